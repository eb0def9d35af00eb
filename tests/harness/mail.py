"""The mail sink as its own process (``python -m crm_campaigns.devmail``), and what it received.

The sink is a real SMTP server (aiosmtpd) writing each accepted message as an ``.eml`` file; a
test reads them back parsed. Recipients matching ``reject_pattern`` get 550 (a bounce).
"""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The campaigns package may not be installed in the venv yet; its source is importable either way.
_CAMPAIGNS_SRC = REPO_ROOT / "services" / "campaigns" / "src"


def free_port() -> int:
    # crm_shared.devstack has one too, but importing it costs the receiver process a second and a half.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict[str, str]:
    paths = [str(REPO_ROOT), str(_CAMPAIGNS_SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def spawn(argv: list[str], log_path: Path) -> subprocess.Popen:
    """Start ``python argv…`` at once (stderr to ``log_path``); ``wait_listening`` then waits for it."""
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, *argv], cwd=REPO_ROOT, env=child_env(),
                                stdout=subprocess.PIPE, stderr=log)


def spawn_until_listening(argv: list[str], log_path: Path, *, timeout_s: float = 20.0) -> subprocess.Popen:
    """Start ``python argv…`` and return once it printed its "listening" line."""
    return wait_listening(spawn(argv, log_path), log_path, timeout_s=timeout_s)


def wait_listening(process: subprocess.Popen, log_path: Path, *, timeout_s: float = 20.0) -> subprocess.Popen:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if selector.select(left) and "listening" in process.stdout.readline().decode(errors="replace"):
                return process
            if process.poll() is not None:
                break
    stop_process(process)
    raise RuntimeError(f"{process.args} did not start listening:\n{log_path.read_text()[-2000:]}")


def stop_process(process: subprocess.Popen | None, timeout_s: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    finally:
        if process.stdout:
            process.stdout.close()


class MailSink:
    """``with MailSink(tmp_path) as sink:`` → ``sink.port``; ``sink.messages()``; ``await sink.wait_for(n)``."""

    def __init__(self, folder: Path, *, port: int | None = None, reject_pattern: str | None = None) -> None:
        self.folder = folder / "mail"
        self.log_path = folder / "devmail.log"
        self.port = port or free_port()
        self.reject_pattern = reject_pattern
        self.process: subprocess.Popen | None = None

    def start(self) -> MailSink:
        argv = ["-m", "crm_campaigns.devmail", "--dir", str(self.folder), "--port", str(self.port)]
        if self.reject_pattern:
            argv += ["--reject-pattern", self.reject_pattern]
        self.process = spawn_until_listening(argv, self.log_path)
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def messages(self) -> list[EmailMessage]:
        # Imported here: the webhook receiver's process uses this module's process helpers only.
        from crm_campaigns.devmail import read_messages

        return read_messages(self.folder) if self.folder.is_dir() else []

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[EmailMessage]:
        """At least ``count`` messages (all of them), or TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while len(found := self.messages()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {count} messages arrived in {timeout_s}s")
            await asyncio.sleep(0.02)
        return found


def unsubscribe_link(message: EmailMessage) -> str:
    """The unsubscribe address a campaign e-mail names in its List-Unsubscribe header (RFC 2369)."""
    import re

    found = re.search(r"<(http[^>]+/v1/public/unsubscribe/[^>]+)>", str(message["List-Unsubscribe"]))
    assert found, message["List-Unsubscribe"]
    return found.group(1)
