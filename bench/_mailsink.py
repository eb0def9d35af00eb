"""The SMTP sinks of bench/campaigns.py, each in its own process, and what they received.

``count``: this file run as ``python bench/_mailsink.py PORT FILE``, an aiosmtpd server that accepts
every message and appends "<time.time()> <recipients>" to FILE, one line per message (a mail relay
stands for the outside world; nothing is parsed or stored). ``devmail``: crm_campaigns.devmail, the
sink of ``crm dev`` and the tests, which writes and fsyncs one .eml file per message.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from crm_shared.devstack import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.mail import MailSink, spawn_until_listening, stop_process  # noqa: E402


def serve_sink(port: int, receipts: Path) -> None:
    """An SMTP server that accepts everything and appends "<time.time()> <recipient>" per message."""
    import signal
    import threading

    from aiosmtpd.controller import Controller

    out = receipts.open("a", buffering=1)  # line-buffered: a reader sees each message at once

    class Counting:
        async def handle_DATA(self, server, session, envelope) -> str:
            out.write(f"{time.time():.6f} {' '.join(envelope.rcpt_tos)}\n")
            return "250 2.0.0 Message accepted for delivery"

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    print("listening", flush=True)
    stopped.wait()
    controller.stop()


class Sink:
    """What the sink received: a count, and (recipient → receive time) for messages since a moment."""

    def __init__(self, kind: str, workdir: Path) -> None:

        self.kind, self.port = kind, free_port()
        if kind == "devmail":
            self.devmail = MailSink(workdir, port=self.port).start()
            self.process, self.folder = self.devmail.process, self.devmail.folder
        else:
            self.receipts = workdir / "receipts.txt"
            self.receipts.touch()
            self.process = spawn_until_listening(
                [str(Path(__file__)), str(self.port), str(self.receipts)], workdir / "sink.log")
            self._offset, self._lines = 0, []

    def _read_receipts(self) -> list[tuple[float, str]]:
        with self.receipts.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode().splitlines():
            at, recipient = line.split(" ", 1)
            self._lines.append((float(at), recipient.lower()))
        return self._lines

    def count(self) -> int:
        if self.kind == "devmail":
            return sum(1 for e in os.scandir(self.folder) if e.name.endswith(".eml")) if self.folder.is_dir() else 0
        return len(self._read_receipts())

    def received_since(self, since: float) -> dict[str, float]:
        """Recipient → the first receive time at or after ``since`` (epoch seconds)."""
        found: dict[str, float] = {}
        if self.kind == "devmail":
            from email.parser import BytesParser
            for entry in os.scandir(self.folder):
                at = int(entry.name.split("-", 1)[0]) / 1e9 if entry.name.endswith(".eml") else 0
                if at >= since:
                    headers = BytesParser().parsebytes(Path(entry.path).read_bytes(), headersonly=True)
                    found.setdefault(str(headers["To"]).lower(), at)
            return found
        for at, recipient in self._read_receipts():
            if at >= since:
                found.setdefault(recipient, at)
        return found

    def distinct_recipients(self) -> int | None:
        return len({r for _, r in self._read_receipts()}) if self.kind == "count" else None

    def stop(self) -> None:
        stop_process(self.process)


if __name__ == "__main__":
    serve_sink(int(sys.argv[1]), Path(sys.argv[2]))
