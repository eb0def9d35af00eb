"""How each SMTP reply becomes an outcome, against real aiosmtpd servers answering as a relay might."""

from __future__ import annotations

import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from crm_campaigns.delivery.smtp import SmtpSender, SmtpSettings
from crm_campaigns.devmail import MailFolderHandler, mail_sink, read_messages

from tests.harness.mail import free_port
from tests.unit.campaigns.test_channels_smtp import Commits, a_message, self_signed


class Replying(MailFolderHandler):
    """Stores like the sink, but answers RCPT or the end of DATA with a chosen reply."""

    def __init__(self, folder, *, rcpt: str | None = None, data: str | None = None, hang_up: bool = False):
        super().__init__(folder)
        self.rcpt, self.data, self.hang_up = rcpt, data, hang_up

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return self.rcpt or await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):
        if self.data:
            return self.data
        reply = await super().handle_DATA(server, session, envelope)
        if self.hang_up:  # stored, then the connection dies before the 250 reaches the client
            server.transport.abort()
        return reply


async def send_through(handler: MailFolderHandler, commits: Commits, **controller_options):
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **controller_options)
    controller.start()
    try:
        async with SmtpSender(SmtpSettings(port=controller.port)) as sender:
            return await sender.send(a_message("reply-1"), commit_sent=commits)
    finally:
        controller.stop()


@pytest.mark.parametrize(("handler_options", "expected", "committed"), [
    ({"data": "554 5.7.1 Message rejected as spam"}, ("bounced", 554), True),
    ({"data": "451 4.3.0 Try again later"}, ("retry", 451), True),
    ({"rcpt": "450 4.2.1 Mailbox busy"}, ("retry", 450), False),
    ({"rcpt": "553 5.1.3 <ada@example.org> bad address"}, ("bounced", 553), False),
])
async def test_replies_become_outcomes(tmp_path, handler_options, expected, committed):
    commits = Commits()
    outcome = await send_through(Replying(tmp_path, **handler_options), commits)
    assert (outcome.status, outcome.code) == expected
    assert outcome.committed is committed and commits.count == int(committed)
    assert "@" not in outcome.reason
    assert read_messages(tmp_path) == []


async def test_a_refused_data_command_is_not_committed(tmp_path):
    class RefusesData(SMTP):
        async def smtp_DATA(self, arg):
            await self.push("554 5.5.1 No valid recipients")

    class Controlling(Controller):
        def factory(self):
            return RefusesData(self.handler, **self.SMTP_kwargs)

    controller = Controlling(MailFolderHandler(tmp_path), hostname="127.0.0.1", port=free_port())
    controller.start()
    commits = Commits()
    try:
        async with SmtpSender(SmtpSettings(port=controller.port)) as sender:
            outcome = await sender.send(a_message("refused-data"), commit_sent=commits)
    finally:
        controller.stop()
    assert (outcome.status, outcome.code, commits.count) == ("bounced", 554, 0)


async def test_no_reply_after_the_dot_counts_as_sent(tmp_path):
    # The server may have kept it (this one did): sending again could deliver it twice.
    outcome = await send_through(Replying(tmp_path, hang_up=True), Commits())
    assert (outcome.status, outcome.committed) == ("sent", True)
    assert len(read_messages(tmp_path)) == 1


async def test_implicit_tls(tmp_path):
    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    controller = mail_sink(tmp_path / "mail", port=free_port(), ssl_context=tls)
    controller.start()
    try:
        async with SmtpSender(SmtpSettings(port=controller.port, use_tls=True, cafile=cert)) as sender:
            outcome = await sender.send(a_message("implicit-tls"), commit_sent=Commits())
        untrusted = SmtpSettings(port=controller.port, use_tls=True)  # the system store knows no such CA
        async with SmtpSender(untrusted) as sender:
            refused = await sender.send(a_message("untrusted"), commit_sent=(commits := Commits()))
    finally:
        controller.stop()
    assert outcome.status == "sent"
    assert refused.status == "retry" and commits.count == 0
    assert [m["X-CRM-Message-Id"] for m in read_messages(tmp_path / "mail")] == ["implicit-tls"]


async def test_an_international_address_goes_by_smtputf8(tmp_path):
    controller = mail_sink(tmp_path, port=free_port())
    controller.start()
    try:
        async with SmtpSender(SmtpSettings(port=controller.port)) as sender:
            outcome = await sender.send(a_message("utf8", to="José <josé@exämple.org>"), commit_sent=Commits())
    finally:
        controller.stop()
    assert outcome.status == "sent"
    assert read_messages(tmp_path)[0]["To"].addresses[0].addr_spec == "josé@exämple.org"


def test_credentials_are_not_sent_where_starttls_could_be_stripped():
    with pytest.raises(ValueError, match="start_tls"):
        SmtpSettings(host="smtp.example.org", username="relay", password="x")
    SmtpSettings(host="smtp.example.org", username="relay", password="x", start_tls=True)
    SmtpSettings(host="smtp.example.org", username="relay", password="x", use_tls=True, port=465)
    SmtpSettings(host="127.0.0.1", username="relay", password="x")  # a local relay or sink
    with pytest.raises(ValueError, match="exclusive"):
        SmtpSettings(use_tls=True, start_tls=True)
