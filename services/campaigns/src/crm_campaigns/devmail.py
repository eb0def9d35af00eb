"""The mail sink of ``crm dev`` and the tests: a real SMTP server that keeps each message as a file.

Every accepted message becomes ``<received_ns>-<X-CRM-Message-Id or a uuid>.eml`` in one folder,
written to a hidden temporary file and renamed, so a reader never sees half a message. Recipients
matching ``--reject-pattern`` are refused with 550 at RCPT, which is how tests make a bounce.

    python -m crm_campaigns.devmail --dir DIR --port PORT [--host 127.0.0.1] [--reject-pattern REGEX]
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import os
import re
import signal
import threading
import time
import uuid
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class MailFolderHandler:
    """aiosmtpd handler: refuses recipients matching ``reject``, stores the rest in ``folder``."""

    def __init__(self, folder: Path, reject: re.Pattern[str] | None = None) -> None:
        self.folder = folder
        self.reject = reject
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.reject is not None and self.reject.search(address):
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        await asyncio.to_thread(self.store, content)
        return "250 2.0.0 Message accepted for delivery"

    def store(self, content: bytes) -> Path:
        headers = BytesParser(policy=email.policy.default).parsebytes(content, headersonly=True)
        crm_id = _SAFE_NAME.sub("_", str(headers.get("X-CRM-Message-Id") or ""))[:128] or uuid.uuid4().hex
        final = self.folder / f"{time.time_ns()}-{crm_id}.eml"
        # Hidden and without the .eml suffix until complete: readers list *.eml only.
        temporary = self.folder / f".{final.name}.tmp"
        with temporary.open("wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(final)
        return final


def read_messages(folder: Path) -> list[EmailMessage]:
    """The messages in ``folder`` in the order they were received."""
    messages = []
    for path in sorted(folder.glob("*.eml"), key=lambda p: int(p.name.split("-", 1)[0])):
        raw = path.read_bytes()
        try:
            # SMTPUTF8 messages carry UTF-8 headers, which the bytes parser would leave as escapes.
            message = Parser(policy=email.policy.default).parsestr(raw.decode("utf-8"))
        except UnicodeDecodeError:
            message = BytesParser(policy=email.policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


def mail_sink(folder: Path, *, host: str = "127.0.0.1", port: int = 1025, reject_pattern: str | None = None,
              **smtp_options: Any) -> Controller:
    """An (unstarted) threaded aiosmtpd server storing into ``folder``; ``smtp_options`` go to aiosmtpd's
    SMTP (``tls_context``, ``require_starttls``, ``authenticator``, ``auth_required``…)."""
    reject = re.compile(reject_pattern) if reject_pattern else None
    return Controller(MailFolderHandler(folder, reject), hostname=host, port=port, **smtp_options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m crm_campaigns.devmail", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="folder the .eml files are written to")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--reject-pattern", default=None, help="recipients matching this regex get 550")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    controller = mail_sink(args.dir, host=args.host, port=args.port, reject_pattern=args.reject_pattern)
    controller.start()
    try:
        print(f"listening on {args.host}:{args.port}, writing to {args.dir.resolve()}", flush=True)
        stopped.wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
