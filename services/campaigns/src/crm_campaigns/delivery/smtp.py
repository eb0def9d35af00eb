"""E-mail over SMTP, with the "sent" record committed at SMTP's point of no return.

A message is accepted by the server when it answers the final ``<CRLF>.<CRLF>`` of DATA; until that
dot is written the server discards whatever it received if the connection drops. So the sender
writes the envelope and the whole body, awaits ``commit_sent`` (the caller commits "sent" in the
database) and only then writes the dot. A crash before the commit leaves no message and no record
(the worker sends again); a crash after it leaves a record and, at worst, a message the server never
completed — never a message delivered twice. Only a connection lost *after* the dot, before the
reply, is ambiguous; it counts as sent, because sending again could deliver it twice.

aiosmtplib's ``SMTP.data`` writes body and dot in one go, so ``_CommittingSMTP`` splits it with the
library's public pieces: ``execute_command(b"DATA")`` for the 354, then the protocol's ``write`` and
``read_response``.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Literal

import aiosmtplib
from aiosmtplib.email import flatten_message
from aiosmtplib.protocol import normalize_message_line_endings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

SmtpStatus = Literal["sent", "retry", "bounced"]
CommitSent = Callable[[], Awaitable[None]]

# Message ids and domains go into headers and file names: a conservative alphabet, no folding tricks.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_URL = re.compile(r"https?://[^\s<>\"]+")
_MAILTO = re.compile(r"mailto:[^\s<>\"]+")
# Server replies often quote the recipient ("550 <bob@example.com>: unknown user"); the reason is
# stored and logged, and the campaigns service keeps no PII.
_ADDRESS_LIKE = re.compile(r"[^\s<>\"':;,()]+@[^\s<>\"':;,()]+")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_MAX_REASON = 300


class SmtpSettings(BaseModel):
    """How to reach the relay. ``use_tls`` is implicit TLS (port 465); ``start_tls`` None upgrades
    when the server offers STARTTLS, True requires it, False never upgrades."""

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 1025
    use_tls: bool = False
    start_tls: bool | None = None
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: Annotated[float, Field(gt=0)] = 30.0
    from_address: str = "campaigns@localhost"
    from_name: str | None = None
    # Connections kept open and reused; concurrent sends beyond it wait for a free one.
    pool_size: Annotated[int, Field(ge=1, le=32)] = 2
    # A private CA (or a self-signed relay's certificate) to trust instead of the system's store.
    cafile: Path | None = None
    validate_certs: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> SmtpSettings:
        if self.use_tls and self.start_tls:
            raise ValueError("SMTP use_tls (implicit TLS) and start_tls are exclusive")
        if (self.username is None) != (self.password is None):
            raise ValueError("SMTP username and password go together")
        # Opportunistic STARTTLS can be stripped by anyone on the path, who then reads the password.
        if self.username is not None and not (self.use_tls or self.start_tls) and not _is_loopback(self.host):
            raise ValueError("SMTP credentials need use_tls or start_tls=True unless the relay is on this host")
        return self

    @property
    def from_header(self) -> str:
        return str(Address(display_name=self.from_name or "", addr_spec=self.from_address))


@dataclass(frozen=True)
class SmtpOutcome:
    """What became of one attempt. ``committed`` says whether ``commit_sent`` completed: when it
    did and the status is not "sent", the caller replaces its "sent" record with this outcome."""

    status: SmtpStatus
    code: int | None = None
    reason: str = ""
    committed: bool = False


def build_email(*, message_id: str, to: str, from_: str, subject: str, text: str, html: str | None,
                unsubscribe_url: str, unsubscribe_mailto: str | None = None, domain: str) -> EmailMessage:
    """A multipart/alternative message with one-click unsubscribe (RFC 8058) and the CRM's id.

    Header injection is refused: the SMTP policy rejects CR/LF in any header, the subject is folded
    to one line here, and ids, domain and URLs are checked against strict patterns.
    """
    if not _TOKEN.fullmatch(message_id):
        raise ValueError("message_id must be a plain token (letters, digits, . _ -)")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError("domain must be a host name")
    if not _URL.fullmatch(unsubscribe_url):
        raise ValueError("unsubscribe_url must be an http(s) URL without spaces or angle brackets")
    if unsubscribe_mailto is not None and not _MAILTO.fullmatch(unsubscribe_mailto):
        raise ValueError("unsubscribe_mailto must be a mailto: URL")
    message = EmailMessage(policy=email.policy.SMTP)
    message["Message-ID"] = f"<{message_id}@{domain}>"
    message["Date"] = email.utils.format_datetime(datetime.now(UTC))
    message["From"] = from_
    message["To"] = _single_address(to)
    message["Subject"] = " ".join(subject.split())
    unsubscribe = [f"<{unsubscribe_mailto}>"] if unsubscribe_mailto else []
    message["List-Unsubscribe"] = ", ".join([*unsubscribe, f"<{unsubscribe_url}>"])
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-CRM-Message-Id"] = message_id
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _single_address(to: str) -> str:
    pairs = email.utils.getaddresses([to])
    if len(pairs) != 1 or "@" not in pairs[0][1] or any(c in to for c in "\r\n"):
        raise ValueError("a message goes to exactly one address")
    return to


def _scrub(text: str) -> str:
    return _ADDRESS_LIKE.sub("<address>", " ".join(text.split()))[:_MAX_REASON]


def _reply_outcome(code: int, message: str, *, committed: bool, stage: str) -> SmtpOutcome:
    status: SmtpStatus = "sent" if 200 <= code < 300 else "bounced" if 500 <= code < 600 else "retry"
    return SmtpOutcome(status, code, _scrub(f"{stage}: {message}"), committed)


class _CommittingSMTP(aiosmtplib.SMTP):
    """aiosmtplib's client with a DATA that stops before the dot to let the caller commit."""

    async def data_committing(self, message: bytes, commit_sent: CommitSent) -> SmtpOutcome:
        protocol = self.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("not connected")
        start = await self.execute_command(b"DATA")
        if start.code != 354:
            await self._reset()
            return _reply_outcome(start.code, start.message, committed=False, stage="DATA refused")
        # The same transparency DATA itself applies (RFC 5321 §4.5.2): CRLF line ends, dots doubled.
        protocol.write(_LEADING_DOT.sub(b"..", normalize_message_line_endings(message)))
        await self._flushed()
        if not self.is_connected:
            raise aiosmtplib.SMTPServerDisconnected("connection lost during DATA")
        try:
            await commit_sent()
        except BaseException:
            # RSET is impossible in the middle of DATA (it would be read as body text): dropping the
            # connection is how a client abandons a message, and the server discards it.
            self.close()
            raise
        if not self.is_connected:
            return SmtpOutcome("retry", None, "connection lost before the end of data", committed=True)
        try:
            protocol.write(b".\r\n")
        except aiosmtplib.SMTPServerDisconnected:
            self.close()
            return SmtpOutcome("retry", None, "connection lost before the end of data", committed=True)
        try:
            # No await between the write and read_response, which arms the reply before yielding.
            reply = await protocol.read_response(timeout=self.timeout)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPResponseException):
            # The dot went out: the server may have accepted. Sending again could deliver it twice.
            self.close()
            return SmtpOutcome("sent", None, "no reply after the end of data; counted as sent", committed=True)
        return _reply_outcome(reply.code, reply.message, committed=True, stage="end of data")

    async def _flushed(self) -> None:
        """Wait until the transport handed the body to the socket (so a drop shows before the commit)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout or 60.0)
        while (transport := self.transport) is not None and not transport.is_closing() \
                and transport.get_write_buffer_size() > 0:
            if loop.time() > deadline:
                self.close()
                raise aiosmtplib.SMTPTimeoutError("timed out writing the message")
            await asyncio.sleep(0.005)

    async def _reset(self) -> None:
        try:
            await self.rset()
        except (aiosmtplib.SMTPException, OSError):
            self.close()


class SmtpSender:
    """Sends e-mails over a small pool of reused connections (reconnecting when one fails)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        # LIFO: the warm connection is reused first; the others open only under concurrency.
        self._idle: asyncio.LifoQueue[_CommittingSMTP] = asyncio.LifoQueue()
        for _ in range(settings.pool_size):
            self._idle.put_nowait(self._client())

    def _client(self) -> _CommittingSMTP:
        s = self._settings
        return _CommittingSMTP(
            hostname=s.host, port=s.port, use_tls=s.use_tls, start_tls=s.start_tls, username=s.username,
            password=s.password.get_secret_value() if s.password else None, timeout=s.timeout_s,
            validate_certs=s.validate_certs, cert_bundle=str(s.cafile) if s.cafile else None)

    async def __aenter__(self) -> SmtpSender:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """QUIT the open connections (the pool stays usable: it reconnects on the next send)."""
        clients = [self._idle.get_nowait() for _ in range(self._idle.qsize())]
        try:
            for client in clients:
                if client.is_connected:
                    try:
                        await client.quit()
                    except (aiosmtplib.SMTPException, OSError):
                        client.close()
        finally:
            for client in clients:
                self._idle.put_nowait(client)

    async def send(self, message: EmailMessage, *, commit_sent: CommitSent) -> SmtpOutcome:
        """One attempt to deliver ``message``; ``commit_sent`` runs just before the final dot.

        If ``commit_sent`` raises, the message is abandoned (never completed) and the error propagates.
        """
        client = await self._idle.get()
        try:
            return await self._send_on(client, message, commit_sent)
        except BaseException:
            # Cancelled or failed half-way: the connection's state is unknown, start afresh next time.
            client.close()
            raise
        finally:
            self._idle.put_nowait(client)

    async def _send_on(self, client: _CommittingSMTP, message: EmailMessage, commit_sent: CommitSent) -> SmtpOutcome:
        reused = client.is_connected
        try:
            if not reused:
                await client.connect()
            return await self._transaction(client, message, commit_sent)
        except _StaleConnection:
            # The server closed an idle connection (they do after a few minutes); nothing was sent yet.
            client.close()
            if not reused:
                return SmtpOutcome("retry", None, "connection lost before MAIL FROM")
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            return SmtpOutcome("retry", exc.code, _scrub(f"authentication failed: {exc.message}"))
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            return SmtpOutcome("retry", exc.code, _scrub(exc.message))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            return SmtpOutcome("retry", None, _scrub(f"{type(exc).__name__}: {exc}"))
        try:
            await client.connect()
            return await self._transaction(client, message, commit_sent)
        except (aiosmtplib.SMTPException, OSError, TimeoutError, _StaleConnection) as exc:
            client.close()
            return SmtpOutcome("retry", getattr(exc, "code", None), _scrub(f"{type(exc).__name__}: {exc}"))

    async def _transaction(self, client: _CommittingSMTP, message: EmailMessage,
                           commit_sent: CommitSent) -> SmtpOutcome:
        sender = self._settings.from_address
        recipient = email.utils.getaddresses([str(message["To"])])[0][1]
        utf8 = not (sender.isascii() and recipient.isascii())
        if utf8 and not client.supports_extension("smtputf8"):
            return SmtpOutcome("bounced", None, "the relay cannot take a non-ASCII address (no SMTPUTF8)")
        eight_bit = client.supports_extension("8bitmime")
        flat = flatten_message(message, utf8=utf8, cte_type="8bit" if eight_bit else "7bit")
        options = [f"SIZE={len(normalize_message_line_endings(flat))}"] if client.supports_extension("size") else []
        options += ["SMTPUTF8"] if utf8 else []
        options += ["BODY=8BITMIME"] if eight_bit else []
        encoding = "utf-8" if utf8 else "ascii"
        try:
            await client.mail(sender, options=options, encoding=encoding)
        except aiosmtplib.SMTPServerDisconnected as exc:
            raise _StaleConnection from exc
        except aiosmtplib.SMTPSenderRefused as exc:
            # Our own address refused: a relay or configuration problem, not the recipient's bounce.
            await client._reset()
            return SmtpOutcome("retry", exc.code, _scrub(f"sender refused: {exc.message}"))
        try:
            await client.rcpt(recipient, encoding=encoding)
        except aiosmtplib.SMTPRecipientRefused as exc:
            await client._reset()
            return _reply_outcome(exc.code, exc.message, committed=False, stage="recipient refused")
        return await client.data_committing(flat, commit_sent)


class _StaleConnection(Exception):
    """A reused connection turned out closed before anything of this message was sent."""
