"""`crm dev` as a new user runs it: nothing configured, embedded PostgreSQL and Tansu, a mail sink, six services."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from crm_shared.devstack import port_is_free

from tests.harness.infra import wait_until

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"gateway": 8000, "profile": 8001, "loyalty": 8002, "tickets": 8003, "churn": 8004, "campaigns": 8005}


def _free_low_port() -> int:
    """A free port below the ephemeral range, so it is still free when the runner restarts."""
    for _ in range(100):
        port = random.randrange(5_000, 8_000)
        if port_is_free(port):
            return port
    raise RuntimeError("no free port")


def _free_offset() -> int:
    for _ in range(100):
        # Service ports 8000–8005 + offset stay below Linux's ephemeral range (32768–60999): a
        # restart's own outgoing connections once took the gateway's port (CI: "address already
        # in use", crm dev exited).
        offset = random.randrange(10_000, 24_000, 10)
        if all(port_is_free(port + offset) for port in SERVICES.values()):
            return offset
    raise RuntimeError("no free port range")


def _start_dev(data_dir: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "crm_shared.cli", "dev", "--data-dir", str(data_dir)],
                            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT, cwd=ROOT)


def _log_tail(log: Path) -> list[str]:
    return log.read_text(errors="replace").splitlines()[-40:]


async def _all_ready(offset: int, dev: subprocess.Popen, log: Path | None = None) -> bool:
    if dev.poll() is not None:
        tail = "\n".join(_log_tail(log)) if log else ""
        raise AssertionError(f"crm dev exited with {dev.returncode}:\n{tail}")
    async with httpx.AsyncClient(timeout=2) as http:
        for port in SERVICES.values():
            try:
                if (await http.get(f"http://127.0.0.1:{port + offset}/readyz")).status_code != 200:
                    return False
            except httpx.TransportError:
                return False
    return True


def _dev_token(env: dict[str, str]) -> str:
    """A token as a new user gets one: `crm token --role agent --sub agent-1`."""
    result = subprocess.run([sys.executable, "-m", "crm_shared.cli", "token", "--role", "agent", "--sub", "agent-1"],
                            env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


async def _profile(offset: int, customer_id: str, token: str):
    """The profile through the gateway, as the call-centre app reads it."""
    async with httpx.AsyncClient(timeout=2, headers={"Authorization": f"Bearer {token}"}) as http:
        response = await http.get(f"http://127.0.0.1:{SERVICES['gateway'] + offset}/v1/profiles/{customer_id}")
    return response.json() if response.status_code == 200 else None


async def test_crm_dev_runs_everything_and_an_order_reaches_the_profile(tmp_path):
    offset = _free_offset()
    broker_port, smtp_port = _free_low_port(), _free_low_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update({"CRM_PORT_OFFSET": str(offset), "CRM_DEV_POSTGRES_PORT": str(_free_low_port()),
                "CRM_DEV_BROKER_PORT": str(broker_port), "CRM_DEV_SMTP_PORT": str(smtp_port),
                "KAFKA_SESSION_TIMEOUT_MS": "2000",
                "KAFKA_HEARTBEAT_INTERVAL_MS": "500"})
    data_dir, log = tmp_path / "crm", tmp_path / "dev.log"
    dev = _start_dev(data_dir, env, log)
    try:
        await wait_until(lambda: _all_ready(offset, dev, log), timeout_s=120, interval_s=0.5,
                         what="all six services ready")
        output = log.read_text()
        for name, port in SERVICES.items():
            assert f"http://127.0.0.1:{port + offset}" in output, f"{name} URL printed"
        assert "[profile]" in output  # logs are streamed with a service prefix
        # The mail sink campaigns sends to, started before the services, and where its messages go.
        assert f"  mail     {data_dir / 'mail'}  (messages sent by campaigns, one .eml each)" in output
        assert f"listening on 127.0.0.1:{smtp_port}" in output and "[mail]" in output
        # The console, where a new user signs in: printed, and served by the gateway.
        console = f"http://127.0.0.1:{SERVICES['gateway'] + offset}/console/"
        assert f"  console  {console}" in output
        async with httpx.AsyncClient(timeout=5) as http:
            page = await http.get(console)
        assert page.status_code == 200 and "static/app.js" in page.text

        publish = subprocess.run(
            [sys.executable, "-m", "crm_shared.cli", "publish", str(ROOT / "examples" / "first-order.jsonl")],
            env={**env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}"}, capture_output=True, text=True)
        assert publish.returncode == 0, publish.stderr
        token = _dev_token(env)
        async with httpx.AsyncClient(timeout=2) as http:  # the service port itself wants the gateway's identity
            direct = await http.get(f"http://127.0.0.1:{SERVICES['profile'] + offset}/v1/profiles/c-1001")
        assert direct.status_code == 401
        profile = await wait_until(lambda: _profile(offset, "c-1001", token), timeout_s=30, what="the example order")
        assert profile["order_count"] == 1 and profile["total_spent"] == {"CNY": "1299.00"}
        assert profile["email"] == "l*****@example.com" and profile["pii"] == "masked"  # an agent, by default
    finally:
        dev.send_signal(signal.SIGINT)
        exit_code = dev.wait(60)
    assert exit_code == 0
    assert all(port_is_free(port + offset) for port in SERVICES.values()), "every service stopped"
    assert port_is_free(smtp_port), "the mail sink stopped"
    assert "stopped." in log.read_text()

    # The database lives under the data folder: a restart still knows the customer.
    dev = _start_dev(data_dir, env, log)
    try:
        await wait_until(lambda: _all_ready(offset, dev, log), timeout_s=120, interval_s=0.5,
                         what="ready after restart")
        profile = await _profile(offset, "c-1001", token)
        assert profile is not None and profile["order_count"] == 1
    finally:
        dev.send_signal(signal.SIGINT)
        assert dev.wait(60) == 0
