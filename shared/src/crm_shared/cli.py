"""The ``crm`` command: run the whole system locally and poke at it.

    crm dev                 embedded PostgreSQL + Tansu (unless configured), migrations, topics,
                            a mail sink, the six services on 8000-8005, logs prefixed; Ctrl-C stops all
    crm serve NAME          one service process (what the Dockerfiles run)
    crm migrate [NAME ...]  apply migrations (DATABASE_URL names the server)
    crm topics              create the topics (KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_PARTITIONS,
                            KAFKA_TOPIC_REPLICATION_FACTOR)
    crm publish FILE.jsonl  publish CloudEvents (structured JSON, one a line) to Kafka
    crm import FILE.csv     backfill order history as commerce.order.* events (backfill.py)
    crm dlq show TOPIC      what a dead-letter topic holds, by reason (dlq.py)
    crm dlq replay TOPIC    publish its records back to their original topics
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

DEV_DIR_NAME = ".crm"
# Fixed dev ports so a restart finds the same database; movable for running two stacks at once.
DEV_POSTGRES_PORT = int(os.environ.get("CRM_DEV_POSTGRES_PORT", "54329"))
DEV_BROKER_PORT = int(os.environ.get("CRM_DEV_BROKER_PORT", "19092"))
# Added to every service's default port (8000-8005).
PORT_OFFSET = int(os.environ.get("CRM_PORT_OFFSET", "0"))
# The mail sink's SMTP port (another free one if taken: it keeps no state a restart must find).
DEV_SMTP_PORT = int(os.environ.get("CRM_DEV_SMTP_PORT", str(1025 + PORT_OFFSET)))
TOPIC_PARTITIONS = int(os.environ.get("KAFKA_TOPIC_PARTITIONS", "4"))
TOPIC_REPLICATION_FACTOR = int(os.environ.get("KAFKA_TOPIC_REPLICATION_FACTOR", "1"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crm", description="E-commerce CRM: dev runner and tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="start everything locally")
    dev.add_argument("--data-dir", type=Path, default=None, help="where the dev data lives (default ./.crm)")
    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("name")
    migrate = sub.add_parser("migrate", help="apply migrations to each service's database")
    migrate.add_argument("names", nargs="*")
    sub.add_parser("topics", help="create all topics")
    publish = sub.add_parser("publish", help="publish CloudEvents from a JSON-lines file")
    publish.add_argument("file", type=Path)
    backfill = sub.add_parser("import", help="backfill order history from a CSV file as events")
    backfill.add_argument("file", type=Path)
    backfill.add_argument("--currency", default="CNY", help="for rows without a currency column (default CNY)")
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")
    dlq = sub.add_parser("dlq", help="inspect or replay a dead-letter topic")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, text in (("show", "count the records a replay would move, by reason"),
                       ("replay", "publish the records back to their original topics")):
        action = dlq_sub.add_parser(name, help=text)
        action.add_argument("topic", help="<topic>.<group>.dlq")
        action.add_argument("--group", default="crm-dlq-replay",
                            help="the replay's consumer group: where the last replay stopped")
        if name == "replay":
            action.add_argument("--limit", type=int, default=None, help="replay at most this many records")
    token = sub.add_parser("token", help="print a dev bearer token (HS256, signed with the gateway's JWT_SECRET)")
    token.add_argument("--role", required=True, choices=["customer", "agent", "supervisor", "service", "marketer"])
    token.add_argument("--sub", required=True, help="subject: agent id, or the customer id for --role customer")
    token.add_argument("--customer-id", help="customer tokens only; defaults to --sub")
    token.add_argument("--scope", action="append", default=[], help="service tokens: a scope (repeatable)")
    token.add_argument("--client", help="the calling application (azp claim)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    key = sub.add_parser("identity-key", help="print a service's IDENTITY_KEY, derived from AUTH_SECRET")
    key.add_argument("name", help="profile, loyalty, tickets, churn or campaigns")
    args = parser.parse_args(argv)

    if args.command == "dev":
        return run_dev(args.data_dir or Path.cwd() / DEV_DIR_NAME)
    if args.command == "serve":
        return serve_one(args.name)
    if args.command == "migrate":
        server = os.environ.get("DATABASE_URL")
        if not server:
            parser.error("DATABASE_URL must name the PostgreSQL server")
        prepare_databases(server, args.names or None)
        return 0
    if args.command == "topics":
        asyncio.run(create_topics(kafka_from_environment("127.0.0.1:9092")))
        return 0
    if args.command == "token":
        return print_token(args)
    if args.command == "identity-key":
        return print_identity_key(args.name)
    if args.command == "publish":
        return asyncio.run(publish_file(args.file, kafka_from_environment()))
    if args.command == "import":
        return import_orders(args.file, currency=args.currency, progress=not args.no_progress)
    if args.command == "dlq":
        return run_dlq(args)
    return 2


def kafka_from_environment(default_bootstrap: str = f"127.0.0.1:{DEV_BROKER_PORT}"):
    """The broker of KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL & co. (the services'
    settings, refused in production the same way), else the broker of `crm dev`."""
    from pydantic import ValidationError

    from crm_shared.settings import KafkaSettings

    defaults = {} if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else {"kafka_bootstrap_servers": default_bootstrap}
    try:
        return KafkaSettings(**defaults).kafka
    except ValidationError as exc:
        reasons = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise SystemExit(f"crm: {reasons}") from None


def print_identity_key(service: str) -> int:
    """The key the gateway signs ``service``'s forwarded identities with (see crm_shared.auth)."""
    from crm_shared.auth import identity_key

    secret = os.environ.get("AUTH_SECRET", "")
    if not secret.strip():
        print("AUTH_SECRET must hold the gateway's secret", file=sys.stderr)
        return 1
    print(identity_key(secret, service))
    return 0


def import_orders(path: Path, *, currency: str, progress: bool) -> int:
    from crm_shared.backfill import BackfillError, publish_orders, read_orders

    try:
        events = read_orders(path, default_currency=currency)
    except (BackfillError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    kafka = kafka_from_environment()
    report = asyncio.run(publish_orders(events, kafka, progress=progress))
    print(f"imported {report.orders} order(s) as {report.events} event(s) to {kafka.bootstrap_servers}")
    return 0


def run_dlq(args: argparse.Namespace) -> int:
    from crm_shared import dlq

    if args.dlq_command == "show":
        summary = asyncio.run(dlq.show(kafka_from_environment(), args.topic, group_id=args.group))
        print(f"{summary.records} record(s) to replay in {args.topic}")
        for reason, n in summary.by_reason.most_common():
            print(f"  reason {reason}: {n}")
        for topic, n in summary.by_original_topic.most_common():
            print(f"  from {topic}: {n}")
        for sample in summary.samples:
            print(f"  e.g. {sample['offset']} {sample['type']} {sample['reason']}: {sample['error']}")
        return 0
    report = asyncio.run(dlq.replay(kafka_from_environment(), args.topic, group_id=args.group, limit=args.limit))
    targets = ", ".join(f"{topic} {n}" for topic, n in report.to_topics.most_common()) or "nothing"
    print(f"replayed {report.replayed} record(s) from {args.topic}: {targets}")
    if report.skipped_without_origin:
        print(f"left {report.skipped_without_origin} record(s) without a dlq.original.topic header", file=sys.stderr)
    return 0


def serve_one(name: str) -> int:
    import uvicorn

    from crm_shared.devstack import discover_services

    services = discover_services()
    if name not in services:
        print(f"unknown service {name!r}; installed: {', '.join(services)}", file=sys.stderr)
        return 2
    spec = services[name]
    from pydantic import ValidationError

    try:
        settings = spec.settings()
    except ValidationError as exc:  # a refused configuration: say why, without a traceback
        reasons = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        print(f"crm serve {name}: refusing to start: {reasons}", file=sys.stderr)
        return 2
    module, factory = spec.app_factory.split(":")
    app = getattr(__import__(module, fromlist=[factory]), factory)(settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None,
                timeout_graceful_shutdown=10, loop="uvloop", http="httptools",
                # Longer than the gateway's 60 s idle pool timeout: the gateway always closes an
                # idle connection first, so it never sends a request on one being closed.
                timeout_keep_alive=75, access_log=False)
    return 0


def print_token(args: argparse.Namespace) -> int:
    from crm_shared.auth import mint_user_token
    from crm_shared.devstack import discover_services

    settings = discover_services()["gateway"].settings()
    if settings.jwt_jwks_url:
        print("JWT_JWKS_URL is set: tokens come from your identity provider, not from `crm token`",
              file=sys.stderr)
        return 2
    print(mint_user_token(secret=settings.jwt_secret.get_secret_value(), issuer=settings.jwt_issuer,
                          audience=settings.jwt_audience, role=args.role, subject=args.sub,
                          customer_id=args.customer_id, scopes=tuple(args.scope), client=args.client,
                          ttl_s=args.ttl))
    return 0


def prepare_databases(server_url: str, names: list[str] | None = None) -> dict[str, str]:
    """Create each service's database if needed and migrate it; returns name → database URL."""
    from crm_shared.devstack import database_name, discover_services, ensure_database, with_database
    from crm_shared.migrations import upgrade

    urls = {}
    for spec in discover_services().values():
        if names and spec.name not in names:
            continue
        db = database_name(spec.name)
        asyncio.run(ensure_database(server_url, db))
        url = with_database(server_url, db).replace("postgresql://", "postgresql+asyncpg://", 1)
        upgrade(spec.migrations, url)
        urls[spec.name] = url
    return urls


def all_topics() -> list[str]:
    from crm_shared.bus.kafka import dead_letter_topic, outbox_dead_letter_topic
    from crm_shared.devstack import discover_services
    from crm_shared.events.catalogue import ALL_TOPICS

    topics = list(ALL_TOPICS)
    for spec in discover_services().values():
        topics += [dead_letter_topic(t, f"crm-{spec.name}") for t in spec.subscribes]
        topics.append(outbox_dead_letter_topic(spec.name))
    return topics


async def create_topics(kafka) -> None:
    from crm_shared.bus.kafka import ensure_topics

    await ensure_topics(kafka, all_topics(), partitions=TOPIC_PARTITIONS,
                        replication_factor=TOPIC_REPLICATION_FACTOR)


async def publish_file(path: Path, kafka) -> int:
    """Validate every line against the catalogue first; publish only if all are valid."""
    import orjson

    from crm_shared.bus.kafka import new_producer
    from crm_shared.events.catalogue import InvalidEvent, topic_for, validate_incoming
    from crm_shared.events.envelope import to_kafka

    events, errors = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):  # noqa: ASYNC240 - a one-off CLI read
        if not line.strip():
            continue
        try:
            events.append(validate_incoming(orjson.loads(line), public_only=False)[0])
        except (orjson.JSONDecodeError, InvalidEvent) as exc:
            errors.append(f"{path}:{number}: {exc}")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    producer = new_producer(kafka, "crm-publish")
    await producer.start()
    try:
        for event in events:
            key, value, headers = to_kafka(event)
            await producer.send_and_wait(topic_for(event.type), value=value, key=key, headers=headers)
    finally:
        await producer.stop()
    print(f"published {len(events)} event(s) to {kafka.bootstrap_servers}")
    return 0


def run_dev(data_dir: Path) -> int:
    """Start the stack in the foreground; Ctrl-C (or SIGTERM) stops everything cleanly."""
    from crm_shared.devstack import (
        EmbeddedBroker,
        EmbeddedPostgres,
        campaigns_gateway_token,
        discover_services,
        port_is_free,
        wait_for_port,
    )

    data_dir.mkdir(parents=True, exist_ok=True)
    services = discover_services()
    postgres = broker = None
    children: list[tuple[str, subprocess.Popen]] = []
    sink, mail_dir = None, data_dir / "mail"
    stopping = threading.Event()

    def on_signal(signum, _frame):
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server_url = os.environ.get("DATABASE_URL")
        if not server_url:
            if not port_is_free(DEV_POSTGRES_PORT):
                print(f"port {DEV_POSTGRES_PORT} is taken; is another `crm dev` running?", file=sys.stderr)
                return 1
            postgres = EmbeddedPostgres(data_dir / "postgres", DEV_POSTGRES_PORT).start()
            server_url = postgres.admin_url
            _say(f"embedded PostgreSQL   {server_url}  (data in {data_dir / 'postgres'})")
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            kafka = kafka_from_environment()  # the services read the same KAFKA_* from their environment
        else:
            broker = EmbeddedBroker(DEV_BROKER_PORT, log_path=data_dir / "tansu.log").start()
            kafka = kafka_from_environment(broker.bootstrap_servers)
            _say(f"embedded Tansu broker {broker.bootstrap_servers}  (memory storage: events are gone when it stops)")
        bootstrap = kafka.bootstrap_servers
        database_urls = prepare_databases(server_url)
        asyncio.run(create_topics(kafka))
        _say("databases migrated, topics created")

        # Campaigns (which ships the sink) mails a local sink keeping each message as a .eml file, and
        # calls the gateway with a service token; its links point at the gateway.
        campaigns_env: dict[str, str] = {}
        if "campaigns" in services:
            from crm_shared.devstack import free_port

            smtp_port = DEV_SMTP_PORT if port_is_free(DEV_SMTP_PORT) else free_port()
            sink = subprocess.Popen([sys.executable, "-m", "crm_campaigns.devmail", "--dir", str(mail_dir),
                                     "--port", str(smtp_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            threading.Thread(target=_stream, args=("mail", sink), daemon=True).start()
            wait_for_port(smtp_port, timeout_s=30, process=sink)
            campaigns_env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port),
                             "PUBLIC_BASE_URL": f"http://127.0.0.1:{8000 + PORT_OFFSET}", **campaigns_gateway_token()}

        # Every service learns where the others listen (the gateway calls them).
        service_urls = {f"{spec.name.upper()}_URL": f"http://127.0.0.1:{spec.default_port + PORT_OFFSET}"
                        for spec in services.values()}
        for spec in services.values():
            env = {**os.environ, **service_urls, "PII_KEY_FILE": str(data_dir / "profile-pii.key"),
                   "DATABASE_URL": database_urls[spec.name],
                   "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "HTTP_PORT": str(spec.default_port + PORT_OFFSET),
                   "ENVIRONMENT": os.environ.get("ENVIRONMENT", "dev"),
                   **(campaigns_env if spec.name == "campaigns" else {})}
            process = subprocess.Popen([sys.executable, "-m", "crm_shared.cli", "serve", spec.name], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            threading.Thread(target=_stream, args=(spec.name, process), daemon=True).start()
            children.append((spec.name, process))
        for (_name, process), spec in zip(children, services.values(), strict=True):
            wait_for_port(spec.default_port + PORT_OFFSET, timeout_s=60, process=process)
        _say("ready:")
        for spec in services.values():
            url = f"http://127.0.0.1:{spec.default_port + PORT_OFFSET}"
            _say(f"  {spec.name:<8} {url}   (docs /docs, metrics /metrics)")
        if sink:
            _say(f"  mail     {mail_dir}  (messages sent by campaigns, one .eml each)")
        gateway = f"http://127.0.0.1:{8000 + PORT_OFFSET}"
        if "gateway" in services:
            _say(f"  console  {gateway}/console/  (sign in as an agent, marketer or supervisor)")
        _say("try:  TOKEN=$(crm token --role agent --sub agent-1)")
        _say(f"      curl -H \"Authorization: Bearer $TOKEN\" {gateway}/v1/customers/c-1001")
        _say("Ctrl-C stops everything.")
        failed = False
        while not stopping.is_set():
            for name, process in children + ([("mail", sink)] if sink else []):
                if process.poll() is not None:
                    _say(f"{name} exited with {process.returncode}; stopping")
                    failed = True
                    stopping.set()
            stopping.wait(0.5)
        return 1 if failed else 0  # a service that died is a failure, not a normal stop
    finally:
        _say("stopping…")
        processes = [process for _name, process in children] + ([sink] if sink else [])
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        if broker:
            broker.stop()
        if postgres:
            postgres.stop()
        _say("stopped.")


def _say(message: str) -> None:
    print(f"[crm] {message}", flush=True)


def _stream(name: str, process: subprocess.Popen) -> None:
    prefix = f"[{name}] ".ljust(11).encode()
    assert process.stdout is not None
    for line in iter(process.stdout.readline, b""):
        sys.stdout.buffer.write(prefix + line)
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    sys.exit(main())
