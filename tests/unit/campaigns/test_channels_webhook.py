"""Webhook delivery against a real receiver process that checks signatures, fails on purpose and dedupes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import orjson
import pytest
from crm_campaigns.delivery.webhook import WebhookSender, _sign, classify
from crm_shared.devstack import free_port

from tests.harness.webhook_receiver import WebhookReceiver

SECRET = "whsec-test-0123456789"
PAYLOAD = {"campaign_id": "c-1", "customer_id": "cust-1", "coupon": "WELCOME-42", "text": "Hello ✓"}


@pytest.fixture(scope="module")
def receivers(tmp_path_factory):
    """A well-behaved receiver and one failing the first three attempts, started side by side."""
    both = (WebhookReceiver(tmp_path_factory.mktemp("hooks"), secret=SECRET),
            WebhookReceiver(tmp_path_factory.mktemp("failing"), secret=SECRET, fail_first=3))
    try:
        for receiver in both:
            receiver.launch()
        yield tuple(receiver.wait_listening() for receiver in both)
    finally:
        for receiver in both:
            receiver.stop()


@pytest.fixture
def receiver(receivers):
    return receivers[0]


@pytest.fixture
def failing_receiver(receivers):
    return receivers[1]


async def test_a_signed_message_is_accepted_once(receiver):
    async with WebhookSender(receiver.url, SECRET) as sender:
        first = await sender.send("wh-1", PAYLOAD)
        again = await sender.send("wh-1", PAYLOAD)  # at least once: a retry after a lost answer
    assert (first.status, first.http_status) == ("sent", 200) and again.status == "sent"
    accepted = [r for r in await receiver.received() if r["message_id"] == "wh-1"]
    assert [r["payload"] for r in accepted] == [PAYLOAD]
    assert [r["message_id"] for r in receiver.lines()].count("wh-1") == 1
    assert (await receiver.attempts())["wh-1"] == 2


async def test_a_bad_signature_is_refused_and_fails(receiver):
    async with WebhookSender(receiver.url, "not-the-secret") as sender:
        outcome = await sender.send("wh-bad", PAYLOAD)
    assert (outcome.status, outcome.http_status) == ("failed", 401)
    assert "wh-bad" not in [r["message_id"] for r in await receiver.received()]


async def test_an_old_signature_is_refused(receiver):
    async with WebhookSender(receiver.url, SECRET, clock=lambda: time.time() - 301) as sender:
        outcome = await sender.send("wh-old", PAYLOAD)
    assert (outcome.status, outcome.http_status) == ("failed", 401)


async def test_server_errors_are_retried_until_accepted_once(failing_receiver):
    async with WebhookSender(failing_receiver.url, SECRET) as sender:
        outcomes = [await sender.send("wh-flaky", PAYLOAD) for _ in range(5)]
    assert [(o.status, o.http_status) for o in outcomes] == [("retry", 500)] * 3 + [("sent", 200)] * 2
    assert [r["message_id"] for r in await failing_receiver.received()] == ["wh-flaky"]
    assert (await failing_receiver.attempts())["wh-flaky"] == 5


async def test_no_receiver_or_a_silent_one_is_a_retry():
    async with WebhookSender(f"http://127.0.0.1:{free_port()}/hook", SECRET) as sender:
        refused = await sender.send("wh-down", PAYLOAD)
    assert (refused.status, refused.http_status) == ("retry", None)

    async def never_answers(reader, writer):
        await reader.read(65536)
        await asyncio.sleep(5)

    silent = await asyncio.start_server(never_answers, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        async with WebhookSender(f"http://127.0.0.1:{port}/hook", SECRET, timeout_s=0.3) as sender:
            timed_out = await sender.send("wh-slow", PAYLOAD)
    finally:
        silent.close()
    assert timed_out.status == "retry" and "timed out" in timed_out.reason


def test_the_signature_covers_timestamp_and_body():
    body = orjson.dumps(PAYLOAD)
    header = _sign(SECRET.encode(), body, 1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert _sign(SECRET.encode(), body + b" ", 1_700_000_000) != header


@pytest.mark.parametrize(("http_status", "status"), [
    (200, "sent"), (204, "sent"), (500, "retry"), (503, "retry"), (408, "retry"), (429, "retry"),
    (400, "failed"), (401, "failed"), (404, "failed"), (410, "failed"), (301, "failed")])
def test_http_statuses_are_classified(http_status, status):
    assert classify(http_status) == status
