"""A webhook receiver, as a customer's system would run one: a real HTTP server in its own process.

    python -m tests.harness.webhook_receiver --port P --secret S [--fail-first N] --out FILE

It verifies ``X-CRM-Signature`` itself (its own HMAC code, not the sender's: it stands for the
outside party) and answers 401 to a bad signature or one older than five minutes; answers 500 to the
first N signed attempts of each message id, then 200; dedupes on ``X-CRM-Message-Id`` and appends
each message it accepts, once, to FILE as a JSON line. ``GET /received`` lists those, ``GET /attempts``
counts the attempts per message id. ``WebhookReceiver`` starts and reads it from a test.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web

from tests.harness.mail import free_port, spawn, stop_process, wait_listening

TOLERANCE_S = 300


def signature_is_valid(secret: bytes, body: bytes, header: str, now: float, tolerance_s: int = TOLERANCE_S) -> bool:
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


class Receiver:
    def __init__(self, secret: bytes, fail_first: int, out: Path) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.out = out
        self.attempts: Counter[str] = Counter()
        self.signed_attempts: Counter[str] = Counter()
        # What an earlier run accepted still counts: a restarted receiver keeps deduping.
        lines = out.read_bytes().splitlines() if out.exists() else []
        self.accepted: dict[str, dict[str, Any]] = {(r := orjson.loads(line))["message_id"]: r for line in lines}

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        message_id = request.headers.get("X-CRM-Message-Id", "")
        self.attempts[message_id] += 1
        if not message_id or not signature_is_valid(self.secret, body, request.headers.get("X-CRM-Signature", ""),
                                                     time.time()):
            return web.json_response({"error": "bad signature"}, status=401)
        self.signed_attempts[message_id] += 1
        if self.signed_attempts[message_id] <= self.fail_first:
            return web.json_response({"error": "failing on purpose"}, status=500)
        if message_id in self.accepted:
            return web.json_response({"duplicate": True})
        record = {"message_id": message_id, "timestamp": request.headers.get("X-CRM-Timestamp"),
                  "payload": orjson.loads(body)}
        self.accepted[message_id] = record
        with self.out.open("ab") as out:
            out.write(orjson.dumps(record) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        return web.json_response({"duplicate": False})

    async def received(self, _request: web.Request) -> web.Response:
        return web.json_response({"items": list(self.accepted.values())})

    async def attempts_made(self, _request: web.Request) -> web.Response:
        return web.json_response(dict(self.attempts))


async def serve(host: str, port: int, receiver: Receiver) -> None:
    app = web.Application()
    app.add_routes([web.get("/received", receiver.received), web.get("/attempts", receiver.attempts_made),
                    web.post("/{tail:.*}", receiver.hook)])
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    print(f"listening on http://{host}:{port}", flush=True)
    await stopped.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.webhook_receiver")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, Receiver(args.secret.encode(), args.fail_first, args.out)))


class WebhookReceiver:
    """``with WebhookReceiver(tmp_path, secret=…, fail_first=3) as hook:`` → ``hook.url``; ``await hook.received()``."""

    def __init__(self, folder: Path, *, secret: str, fail_first: int = 0, port: int | None = None) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.port = port or free_port()
        self.out = folder / "webhooks.jsonl"
        self.log_path = folder / "webhook_receiver.log"
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/hooks/campaigns"

    def start(self) -> WebhookReceiver:
        return self.launch().wait_listening()

    def launch(self) -> WebhookReceiver:
        """Start the process and return at once (several launched together start in parallel)."""
        self.process = spawn(["-m", "tests.harness.webhook_receiver", "--port", str(self.port), "--secret",
                              self.secret, "--fail-first", str(self.fail_first), "--out", str(self.out)],
                             self.log_path)
        return self

    def wait_listening(self) -> WebhookReceiver:
        assert self.process is not None, "launch() first"
        wait_listening(self.process, self.log_path)
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    async def received(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            return (await client.get("/received")).raise_for_status().json()["items"]

    async def attempts(self) -> dict[str, int]:
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            return (await client.get("/attempts")).raise_for_status().json()

    def lines(self) -> list[dict[str, Any]]:
        """What the receiver appended to its file (survives its restarts, unlike ``received``)."""
        return [orjson.loads(line) for line in self.out.read_bytes().splitlines()] if self.out.exists() else []


if __name__ == "__main__":
    main()
