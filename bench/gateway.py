"""Gateway benchmark: what the gateway adds to a request, next to nginx, and the customer 360.

    python bench/gateway.py [--requests 4000] [--seconds 10] [--connections 8] [--rate 200] [--rate-seconds 20]

Everything runs on loopback in one run, against the same profile service process:
(a) latency, one keep-alive connection, requests one after another (a Python client in its own
    process), interleaved in rounds so drift hits every target alike: the profile GET direct to
    the service, through nginx (Debian package, keep-alive upstream, access log off) and through
    the gateway (JWT check, route table, rate limits, forwarded identity, metrics, request log)
    → p50/p99 and the overhead over direct;
    A bare Python proxy (uvicorn and aiohttp, forwarding only) is measured beside them: the floor
    of any gateway on this stack, so the gateway's own features can be told from the platform's;
(b) throughput of the same targets with wrk (Debian package), several connections, closed loop;
(c) the customer 360 (four services asked at once) at a fixed rate, open loop, latency measured
    from the moment each request was due → p50/p99 at that rate.

Needs nginx and wrk on the PATH (``apt-get install nginx-light wrk``); without them, the parts
that need them are skipped and say so. Prints one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_shared.auth import Identity, IdentityCodec, Role, mint_user_token  # noqa: E402
from crm_shared.devstack import discover_services, drop_database, free_port, wait_for_port  # noqa: E402
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS  # noqa: E402

from bench._stack import serve_process, stop_processes  # noqa: E402
from bench.backbone import create_migrated_database, postgres_server, start_broker_with_topics  # noqa: E402
from bench.stats import quantile  # noqa: E402
from tests.harness.events import customer_registered, order_paid  # noqa: E402
from tests.harness.infra import Broker  # noqa: E402

AUTH_SECRET = "bench-auth-secret-for-forwarded-identities-0123456789"
JWT_SECRET = "bench-jwt-secret-of-the-identity-provider-0123456789"
BENCH_PII_KEY = "YmVuY2gtcGlpLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Ng=="  # base64 of 37 bytes
CUSTOMER = "c-bench-0001"
SERVICES = ("profile", "loyalty", "tickets", "churn", "gateway")


# ---------------------------------------------------------------- client processes

def client_latency(port: int, path: str, headers_json: str, count: int) -> None:
    """One keep-alive connection, one request after another; prints the latencies (ms) as JSON."""
    import http.client

    headers = json.loads(headers_json)
    connection = http.client.HTTPConnection("127.0.0.1", port)
    latencies, failures = [], 0
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        failures += response.status != 200
    print(json.dumps({"latencies": latencies, "failures": failures}))


def client_rate(url: str, headers_json: str, rate: float, seconds: float) -> None:
    """Open loop: request i is due at i/rate; latency counts from when it was due (no coordinated
    omission). Prints the latencies (ms) and the non-200 count as JSON."""
    import aiohttp

    async def run() -> None:
        headers = json.loads(headers_json)
        latencies: list[float] = []
        failures = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
            async def one(due: float) -> None:
                nonlocal failures
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    failures += response.status != 200
                latencies.append((time.perf_counter() - due) * 1000)

            start = time.perf_counter() + 0.2
            await asyncio.gather(*(one(start + i / rate) for i in range(int(rate * seconds))))
        print(json.dumps({"latencies": latencies, "failures": failures}))

    import uvloop
    uvloop.run(run())


def serve_floor(port: int, upstream_port: int) -> None:
    """The floor of any proxy on this stack: uvicorn (uvloop, httptools) and an aiohttp pool,
    forwarding method, path and headers, with no auth, limits, metrics or logs."""
    import aiohttp
    import uvicorn

    session: dict[str, aiohttp.ClientSession] = {}
    base = f"http://127.0.0.1:{upstream_port}"

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                session["s"] = aiohttp.ClientSession(auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            await session["s"].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k != b"host"]
        async with session["s"].request(scope["method"], base + scope["path"], headers=headers) as answer:
            body = await answer.read()
            await send({"type": "http.response.start", "status": answer.status,
                        "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, log_level="warning", loop="uvloop",
                http="httptools", access_log=False)


def run_client(*args: str) -> dict:
    output = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(output.stdout)


# ---------------------------------------------------------------- the stack

def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(quantile(values, 0.50), 3), "p99_ms": round(quantile(values, 0.99), 3),
            "mean_ms": round(statistics.fmean(values), 3)}


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream profile {{ server 127.0.0.1:{upstream}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://profile;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def start_nginx(workdir: Path, upstream_port: int) -> tuple[subprocess.Popen | None, int | None]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        return None, None
    port = free_port()
    conf_dir = workdir / "nginx"
    conf_dir.mkdir()
    (conf_dir / "nginx.conf").write_text(NGINX_CONF.format(dir=conf_dir, upstream=upstream_port, port=port))
    process = subprocess.Popen([nginx, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, timeout_s=10, process=process)
    return process, port


def wrk(url: str, headers: dict[str, str], connections: int, seconds: int) -> dict | None:
    if shutil.which("wrk") is None:
        return None
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for name, value in headers.items():
        command[1:1] = ["-H", f"{name}: {value}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    # wrk's own percentiles, from its latency histogram (docs/benchmarks.md, "Percentiles")
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)

    def ms(found) -> float:
        return round(float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)], 3)
    return {"requests_per_s": round(rps), "p50_ms": ms(p50), "p99_ms": ms(p99),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0}


async def main(args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-gateway-"))
    processes: list[subprocess.Popen] = []
    broker_process = None
    server_url, postgres = postgres_server(workdir)
    databases = {name: f"bench_gw_{name}_{os.getpid()}" for name in SERVICES}
    ports = {name: free_port() for name in SERVICES}
    try:
        broker_process = await start_broker_with_topics(workdir)
        broker = Broker(broker_process.bootstrap_servers, "bench")
        specs = discover_services()
        dsns = {name: await create_migrated_database(server_url, databases[name], specs[name].migrations)
                for name in SERVICES}
        for name in SERVICES:
            env = {**os.environ, "DATABASE_URL": dsns[name],
                   "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "HTTP_PORT": str(ports[name]),
                   "ENVIRONMENT": "test", "AUTH_SECRET": AUTH_SECRET, "JWT_SECRET": JWT_SECRET,
                   "CONSUMER_GROUP": f"bench-{name}", "PII_KEY": BENCH_PII_KEY, "KAFKA_SESSION_TIMEOUT_MS": "2000",
                   "KAFKA_HEARTBEAT_INTERVAL_MS": "500", "LOG_LEVEL": args.log_level,
                   # The bench is one client hammering one customer: limits are checked, never hit.
                   "RATE_LIMIT_CLIENT": "100000000/minute", "RATE_LIMIT_CUSTOMER": "100000000/minute",
                   **{f"{n.upper()}_URL": f"http://127.0.0.1:{ports[n]}" for n in SERVICES if n != "gateway"}}
            processes.append(serve_process(name, env, workdir))
        for name, process in zip(SERVICES, processes, strict=True):
            wait_for_port(ports[name], timeout_s=60, process=process)
        nginx, nginx_port = start_nginx(workdir, ports["profile"])
        if nginx is not None:
            processes.append(nginx)
        floor_port = free_port()
        processes.append(subprocess.Popen([sys.executable, __file__, "--serve-floor", str(floor_port),
                                           str(ports["profile"])]))
        wait_for_port(floor_port, timeout_s=30, process=processes[-1])

        await broker.publish(TOPIC_CUSTOMERS, [customer_registered(CUSTOMER)])
        await broker.publish(TOPIC_ORDERS, [order_paid(CUSTOMER, amount="99.00")])
        identity = {"x-crm-identity": IdentityCodec(AUTH_SECRET, ttl_s=7200).encode(
            Identity(subject="agent-bench", role=Role.AGENT), "profile")}
        bearer = {"Authorization": "Bearer " + mint_user_token(
            secret=JWT_SECRET, issuer="crm-dev", audience="crm", role="agent", subject="agent-bench", ttl_s=7200)}
        path = f"/v1/profiles/{CUSTOMER}"
        import httpx
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 30
            while (await http.get(f"http://127.0.0.1:{ports['profile']}{path}", headers=identity)).status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("the seeded customer never reached the profile")
                await asyncio.sleep(0.1)

        targets = {"direct": (ports["profile"], identity), "gateway": (ports["gateway"], bearer),
                   "bare_python_proxy": (floor_port, identity)}
        if nginx_port is not None:
            targets["nginx"] = (nginx_port, identity)
        # (a) latency, interleaved rounds, after a warm-up of each target.
        samples: dict[str, list[float]] = {name: [] for name in targets}
        failures = dict.fromkeys(targets, 0)
        rounds = 4 if "latency" in args.parts else 0
        for port, headers in targets.values():
            if rounds:  # warm-up: connections, caches, the first JIT-less passes
                run_client("--client-latency", str(port), path, json.dumps(headers), "300")
        for _ in range(rounds):
            for name, (port, headers) in targets.items():
                result = run_client("--client-latency", str(port), path, json.dumps(headers),
                                    str(args.requests // rounds))
                samples[name].extend(result["latencies"])
                failures[name] += result["failures"]
        latency = {name: {**summary(values), "non_200": failures[name]} for name, values in samples.items() if values}
        overhead = {name: round(latency[name]["p50_ms"] - latency["direct"]["p50_ms"], 3)
                    for name in latency if name != "direct"}

        # (b) throughput with wrk.
        throughput = {name: wrk(f"http://127.0.0.1:{port}{path}", headers, args.connections, args.seconds)
                      for name, (port, headers) in targets.items() if "throughput" in args.parts}

        # (c) the customer 360 at a fixed rate.
        c360 = {"latencies": [0.0], "failures": 0}
        if "360" in args.parts:
            c360 = run_client("--client-rate", f"http://127.0.0.1:{ports['gateway']}/v1/customers/{CUSTOMER}",
                              json.dumps(bearer), str(args.rate), str(args.rate_seconds))
        gateway_rss = psutil.Process(processes[SERVICES.index("gateway")].pid).memory_info().rss

        result = {
            "latency_sequential": latency,
            "overhead_p50_ms": overhead,
            "throughput_wrk": throughput if shutil.which("wrk") else "skipped: wrk not installed",
            "customer360": {"rate_per_s": args.rate, "seconds": args.rate_seconds, **summary(c360["latencies"]),
                            "non_200": c360["failures"]},
            "gateway_rss_mb": round(gateway_rss / 2**20, 1),
            "log_level": args.log_level,
        }
        if "nginx" in overhead:
            nginx_overhead = overhead["nginx"]
            result["gateway_vs_nginx_overhead_ratio"] = (round(overhead["gateway"] / nginx_overhead, 2)
                                                         if nginx_overhead > 0 else None)
        else:
            result["nginx"] = "skipped: nginx not installed"
        if set(args.parts) != {"latency", "throughput", "360"}:
            return result  # a partial run (while tuning) checks no targets
        result["targets"] = {
            "gateway overhead p50 <= 2 ms": overhead["gateway"] <= 2.0,
            "gateway overhead <= 3x nginx's": (result.get("gateway_vs_nginx_overhead_ratio") or 99) <= 3.0,
            "360 p99 <= 30 ms at 200/s": result["customer360"]["p99_ms"] <= 30.0 and args.rate >= 200,
        }
        return result
    finally:
        stop_processes(reversed(processes), wait_s=15)  # the proxies before the services behind them
        for name in SERVICES:
            with contextlib.suppress(Exception):  # best-effort cleanup of a bench database
                await drop_database(server_url, databases[name])
        if broker_process is not None:
            broker_process.stop()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client-latency":
        client_latency(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-floor":
        serve_floor(int(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--client-rate":
        client_rate(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000, help="sequential requests per target (a)")
    parser.add_argument("--seconds", type=int, default=10, help="wrk run per target (b)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (b)")
    parser.add_argument("--rate", type=float, default=200, help="360 requests per second (c)")
    parser.add_argument("--rate-seconds", type=float, default=20, help="length of the 360 run (c)")
    parser.add_argument("--log-level", default="INFO", help="services' LOG_LEVEL (INFO logs every request)")
    parser.add_argument("--parts", nargs="+", default=["latency", "throughput", "360"],
                        choices=["latency", "throughput", "360"], help="run only these parts (tuning)")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
