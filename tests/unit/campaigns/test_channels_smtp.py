"""E-mail delivery against real SMTP servers: the devmail sink as a process, aiosmtpd in-process for TLS,
AUTH and a server that drops the connection in the middle of DATA.

The guarantee under test: ``commit_sent`` runs after the body and before the final dot, so a message
is stored by the server only if the "sent" record was committed, and never when the commit failed.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from crm_campaigns.delivery.smtp import SmtpSender, SmtpSettings, build_email
from crm_campaigns.devmail import MailFolderHandler, mail_sink, read_messages
from crm_shared.devstack import free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from tests.harness.mail import MailSink

RECIPIENT = "ada@example.org"


def a_message(message_id: str = "msg-1", to: str = RECIPIENT, subject: str = "Happy birthday"):
    return build_email(message_id=message_id, to=to, from_="Shop <campaigns@shop.example>", subject=subject,
                       text="Hello Ada, 20% off today.", html="<p>Hello Ada, <b>20%</b> off today.</p>",
                       unsubscribe_url=f"https://shop.example/v1/public/unsubscribe/tok-{message_id}",
                       domain="shop.example")


class Commits:
    """The caller's side: records each commit (it would commit "sent" in the database)."""

    def __init__(self, *, fail: bool = False, latency_s: float = 0.0, probe=None) -> None:
        self.count = 0
        self.fail = fail
        self.latency_s = latency_s
        self.probe = probe

    async def __call__(self) -> None:
        await asyncio.sleep(self.latency_s)
        if self.probe:
            await self.probe()
        if self.fail:
            raise RuntimeError("database unavailable")
        self.count += 1


@pytest.fixture(scope="module")
def sink(tmp_path_factory):
    with MailSink(tmp_path_factory.mktemp("sink"), reject_pattern=r"^bounce") as running:
        yield running


async def test_accepted_mail_arrives_once_with_its_headers(sink):
    before = len(sink.messages())

    async def not_yet_stored():
        # The server has the whole body but no final dot: it must not have kept the message.
        await asyncio.sleep(0.1)
        assert "acc-1" not in [m["X-CRM-Message-Id"] for m in sink.messages()]

    commits = Commits(probe=not_yet_stored)
    async with SmtpSender(SmtpSettings(port=sink.port, from_address="campaigns@shop.example")) as sender:
        outcome = await sender.send(a_message("acc-1"), commit_sent=commits)
    assert (outcome.status, outcome.code, outcome.committed, commits.count) == ("sent", 250, True, 1)
    stored = [m for m in (await sink.wait_for(before + 1)) if m["X-CRM-Message-Id"] == "acc-1"]
    assert len(stored) == 1
    message = stored[0]
    assert message["Message-ID"] == "<acc-1@shop.example>"
    assert message["List-Unsubscribe"] == "<https://shop.example/v1/public/unsubscribe/tok-acc-1>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/alternative"
    assert "20% off" in message.get_body(("plain",)).get_content()
    assert "<b>20%</b>" in message.get_body(("html",)).get_content()


async def test_a_rejected_recipient_bounces_without_a_commit(sink):
    commits = Commits()
    async with SmtpSender(SmtpSettings(port=sink.port)) as sender:
        outcome = await sender.send(a_message("bnc-1", to="bounce-me@example.org"), commit_sent=commits)
        # The same connection carries on after the refusal (RSET, not a reconnect).
        after = await sender.send(a_message("bnc-2"), commit_sent=commits)
    assert (outcome.status, outcome.code, outcome.committed) == ("bounced", 550, False)
    assert "example.org" not in outcome.reason  # no address in a reason the database keeps
    assert commits.count == 1 and after.status == "sent"
    ids = [m["X-CRM-Message-Id"] for m in await sink.wait_for(1)]
    assert "bnc-1" not in ids and "bnc-2" in ids


async def test_many_messages_share_one_connection(tmp_path):
    connections = []

    class Counting(Controller):
        def factory(self):
            connections.append(1)
            return super().factory()

    controller = Counting(MailFolderHandler(tmp_path), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        opened_by_start = len(connections)  # aiosmtpd probes its own server once
        async with SmtpSender(SmtpSettings(port=controller.port, pool_size=2)) as sender:
            outcomes = [await sender.send(a_message(f"many-{i}"), commit_sent=Commits()) for i in range(20)]
            one_by_one = len(connections) - opened_by_start
            outcomes += await asyncio.gather(*(sender.send(a_message(f"many-{i}"), commit_sent=Commits())
                                               for i in range(20, 40)))
    finally:
        controller.stop()
    assert {o.status for o in outcomes} == {"sent"}
    assert one_by_one == 1  # sequential sends reuse the warm connection
    assert len(connections) - opened_by_start == 2  # concurrent ones use the pool, never more
    assert len(read_messages(tmp_path)) == 40


class DropsDuringData(SMTP):
    """A server that takes DATA, reads one line of the body and hangs up (a crash, a network cut)."""

    async def smtp_DATA(self, arg: str) -> None:
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readuntil(b"\r\n")
        self.transport.close()


async def test_a_connection_dropped_before_the_dot_stores_nothing_and_retries(tmp_path):
    handler = MailFolderHandler(tmp_path)

    class Dropping(Controller):
        def factory(self):
            return DropsDuringData(self.handler, **self.SMTP_kwargs)

    controller = Dropping(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        async with SmtpSender(SmtpSettings(port=controller.port)) as sender:
            # A database commit takes a moment; the hang-up arrives meanwhile.
            outcome = await sender.send(a_message("drop-1"), commit_sent=Commits(latency_s=0.2))
    finally:
        controller.stop()
    assert outcome.status == "retry" and outcome.committed  # the caller replaces its "sent" record
    assert read_messages(tmp_path) == []


async def test_a_failed_commit_abandons_the_message(sink):
    async with SmtpSender(SmtpSettings(port=sink.port)) as sender:
        with pytest.raises(RuntimeError, match="database unavailable"):
            await sender.send(a_message("nocommit-1"), commit_sent=Commits(fail=True))
        # The next send reconnects and goes through.
        outcome = await sender.send(a_message("aftercommit-1"), commit_sent=Commits())
    assert outcome.status == "sent"
    await sink.wait_for(1)
    await asyncio.sleep(0.2)  # had the abandoned message been completed, it would be there by now
    ids = [m["X-CRM-Message-Id"] for m in sink.messages()]
    assert "aftercommit-1" in ids and "nocommit-1" not in ids


async def test_a_closed_idle_connection_is_reopened(tmp_path):
    port = free_port()
    async with SmtpSender(SmtpSettings(port=port, pool_size=1)) as sender:
        for round_ in range(2):
            controller = mail_sink(tmp_path, port=port)
            controller.start()
            try:
                outcome = await sender.send(a_message(f"idle-{round_}"), commit_sent=Commits())
            finally:
                controller.stop()  # the server goes away with our connection open
            assert outcome.status == "sent"
    assert len(read_messages(tmp_path)) == 2


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def check_password(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"relay", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_starttls_and_auth(tmp_path, mechanism):
    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    other = {"PLAIN": ["LOGIN"], "LOGIN": ["PLAIN"]}[mechanism]
    controller = mail_sink(tmp_path / "mail", port=free_port(), tls_context=tls, require_starttls=True,
                           authenticator=check_password, auth_required=True, auth_exclude_mechanism=other)
    controller.start()
    base = SmtpSettings(port=controller.port, start_tls=True, cafile=cert, username="relay",
                        password=SecretStr("s3cret"))
    try:
        async with SmtpSender(base) as sender:
            outcome = await sender.send(a_message("tls-1"), commit_sent=Commits())
        wrong = base.model_copy(update={"password": SecretStr("wrong")})
        async with SmtpSender(wrong) as sender:
            refused = await sender.send(a_message("tls-2"), commit_sent=(commits := Commits()))
    finally:
        controller.stop()
    assert outcome.status == "sent"
    assert (refused.status, refused.code, commits.count) == ("retry", 535, 0)
    assert [m["X-CRM-Message-Id"] for m in read_messages(tmp_path / "mail")] == ["tls-1"]


def test_headers_refuse_injection_and_the_subject_is_one_line():
    message = a_message(subject="Hello\r\n  there\tfriend")
    assert message["Subject"] == "Hello there friend"
    with pytest.raises(ValueError):
        a_message(to="ada@example.org\r\nBcc: eve@example.org")
    with pytest.raises(ValueError):
        a_message(to="ada@example.org, eve@example.org")
    with pytest.raises(ValueError):
        a_message(message_id="x>\r\nBcc: eve@example.org")
    with pytest.raises(ValueError):
        build_email(message_id="m", to=RECIPIENT, from_="a@b.c", subject="s", text="t", html=None,
                    unsubscribe_url="https://x.example/u>, <https://evil.example", domain="shop.example")
    both = build_email(message_id="m", to=RECIPIENT, from_="a@b.c", subject="s", text="t", html=None,
                       unsubscribe_url="https://x.example/u", unsubscribe_mailto="mailto:unsub@x.example",
                       domain="shop.example")
    assert both["List-Unsubscribe"] == "<mailto:unsub@x.example>, <https://x.example/u>"
    assert both.get_content_type() == "text/plain"
