"""Every service has the same skeleton, and each layer keeps to its job.

The layout (docs/architecture.md): ``app.py`` declares the spec; ``api`` routes and ``handlers``
only translate; rules live in ``usecases`` and ``domain``; SQL lives behind ``repository`` (and
in ``models.py`` and ``migrations/``). A service that deviates fails here, so the next one is
written the same way.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from crm_shared.bus import topics_of
from sqlalchemy import MetaData

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("profile", "loyalty", "tickets", "churn", "campaigns", "gateway")
MAX_LINES = 400
# Modules or packages: a layer may grow into a package (api/, schemas/, usecases/, repository/).
REQUIRED = ("app.py", "api", "schemas", "models.py", "usecases", "repository", "handlers.py", "jobs.py",
            "metrics.py", "settings.py", "domain/", "migrations/")
SQL_HOMES = ("repository", "models", "migrations")  # layer() names a module without .py
HTTP_MODULES = {"fastapi", "starlette", "crm_shared.problems", "crm_shared.http", "crm_shared.idempotency"}
IO_MODULES = {"sqlalchemy", "asyncpg", "aiokafka", "httpx", "fastapi", "starlette"}


def package(service: str) -> Path:
    return ROOT / "services" / service / "src" / f"crm_{service}"


def sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "migrations" not in p.relative_to(root).parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def uses_sql(path: Path) -> bool:
    """Builds SQL (``text``, ``select``… from sqlalchemy) or runs a statement (``.execute(...)``)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in {"execute", "exec_driver_sql"} \
                    and not _is_self_repo(func):
                return True
        if isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy" and any(
                alias.name in {"text", "select", "insert", "update", "delete"} for alias in node.names):
            return True
    return False


def _is_self_repo(func: ast.Attribute) -> bool:
    # uow.repo.execute_something(...) is a repository method, not SQL; only bare .execute counts.
    return isinstance(func.value, ast.Attribute) and func.value.attr == "repo"


def layer(service: str, path: Path) -> str:
    return path.relative_to(package(service)).parts[0].removesuffix(".py")


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_skeleton(service):
    root = package(service)
    missing = []
    for item in REQUIRED:
        if item.endswith("/"):
            ok = (root / item).is_dir()
        elif item.endswith(".py"):
            ok = (root / item).is_file()
        else:
            ok = (root / f"{item}.py").is_file() or (root / item / "__init__.py").is_file()
        if not ok:
            missing.append(item)
    assert not missing, f"crm_{service} lacks {missing}"


@pytest.mark.parametrize("service", SERVICES)
def test_the_spec_declares_handlers_topics_repository_and_jobs(service):
    spec = importlib.import_module(f"crm_{service}.app").SERVICE
    handlers = importlib.import_module(f"crm_{service}.handlers")
    jobs = importlib.import_module(f"crm_{service}.jobs")
    repository = importlib.import_module(f"crm_{service}.repository")
    assert spec.handlers is handlers.HANDLERS
    assert spec.subscribes == handlers.TOPICS == topics_of(handlers.HANDLERS)
    assert spec.jobs is jobs.periodic_jobs
    assert isinstance(spec.repository, type) and spec.repository.__module__.startswith(repository.__name__)
    metadata = importlib.import_module(f"crm_{service}.models").metadata
    assert isinstance(metadata, MetaData) and metadata.tables
    env = (package(service) / "migrations" / "env.py").read_text()
    assert "run_env(metadata)" in env and f"crm_{service}.models" in env


@pytest.mark.parametrize("service", SERVICES)
def test_sql_lives_behind_the_repository(service):
    offenders = [str(p.relative_to(ROOT)) for p in sources(package(service))
                 if layer(service, p) not in SQL_HOMES and uses_sql(p)]
    assert not offenders, f"SQL outside repository/models/migrations: {offenders}"


@pytest.mark.parametrize("service", SERVICES)
def test_use_cases_and_domain_know_nothing_of_http(service):
    offenders = []
    for path in sources(package(service)):
        kind = layer(service, path)
        banned = HTTP_MODULES if kind == "usecases" else IO_MODULES if kind == "domain" else set()
        hits = {m for m in imports(path) for b in banned if m == b or m.startswith(b + ".")}
        if hits:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(hits)}")
    assert not offenders, "\n".join(offenders)


def test_no_source_file_is_over_the_limit():
    roots = [package(s) for s in SERVICES] + [ROOT / "shared" / "src" / "crm_shared"]
    long = {str(p.relative_to(ROOT)): n for root in roots for p in sources(root)
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by responsibility (> {MAX_LINES} lines): {long}"
