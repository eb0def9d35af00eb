# The two commands a new user runs: `make run` and `make test`. Only Python 3.11+ is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PACKAGES := shared services/profile services/loyalty services/tickets services/churn services/campaigns services/gateway
PYPROJECTS := $(addsuffix /pyproject.toml,$(PACKAGES))

.PHONY: install browser run test unit soak bench lint clean

install: $(STAMP) browser

# browser: Debian's Chromium for the browser tests (a no-op when one is installed; see the script).
browser:
	sh deploy/install-browser.sh

$(STAMP): $(PYPROJECTS) requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e "shared[dev]" $(addprefix -e ,$(filter services/%,$(PACKAGES))) -r requirements-dev.txt
	sh deploy/prometheus/fetch-promtool.sh $(BIN)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/crm dev

# test: the whole suite, on TEST_WORKERS pytest-xdist workers (worksteal: a slow e2e test does not hold
# back a queue of others). Each worker has its own embedded PostgreSQL; each test its own databases and broker.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

# unit: the domain and use-case tests only, no PostgreSQL or broker (under a minute).
unit: install
	$(BIN)/python -m pytest tests/unit -p no:cacheprovider

# soak: the 50,000-order fault run; the schemathesis runs of make test again with many more
# examples per operation and phase; the benchmarks.
soak: install
	$(BIN)/python -m pytest -m soak -p no:cacheprovider
	FUZZ_MAX_EXAMPLES=100 FUZZ_SERVICE_MAX_EXAMPLES=50 $(BIN)/python -m pytest -p no:cacheprovider \
		tests/reliability/test_http_fuzz.py -k "generated or on_its_own"
	$(BIN)/python bench/backbone.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/profile.py
	$(BIN)/python bench/e2e.py

bench: install
	$(BIN)/python bench/backbone.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/profile.py
	$(BIN)/python bench/loyalty.py
	$(BIN)/python bench/tickets.py
	$(BIN)/python bench/churn.py
	$(BIN)/python bench/backfill.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/campaigns.py
	$(BIN)/python bench/console.py

lint: install
	$(BIN)/ruff check shared services tests bench

clean:
	rm -rf $(VENV) .pytest_cache
