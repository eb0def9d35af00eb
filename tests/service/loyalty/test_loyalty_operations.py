"""What operators and the other services see: metrics, erasure, and bad programme documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import customer_registered, new_customer_id
from tests.harness.infra import wait_until
from tests.service.loyalty.conftest import NOW, SUPERVISOR, paid


async def test_metrics_show_points_issued_redeemed_and_the_outstanding_liability(loyalty):
    customer = new_customer_id()
    await loyalty.orders(paid(customer, "o-1", "1000.00", at=NOW - timedelta(days=30)),
                         paid(customer, "o-2", "300.00"))
    await loyalty.applied(2)
    async with loyalty.service.client() as http:
        assert (await loyalty.redeem(http, customer, 250)).status_code == 201

    async def settled() -> bool:
        return await loyalty.service.metric("crm_loyalty_points_redeemed_total") == 250
    await wait_until(settled, what="metrics refreshed")
    assert await loyalty.service.metric("crm_loyalty_points_issued_total") == 1300
    assert await loyalty.service.metric("crm_loyalty_liability_points", state="available") == 750
    assert await loyalty.service.metric("crm_loyalty_liability_points", state="pending") == 300
    assert await loyalty.service.metric("crm_loyalty_liability_value", currency="CNY") == 7.5
    assert await loyalty.service.metric("crm_loyalty_members") == 1


async def test_an_erased_customer_loses_the_birthday_but_the_ledger_stays(loyalty):
    customer = new_customer_id()
    await loyalty.publish(TOPIC_CUSTOMERS, customer_registered(customer))
    await loyalty.orders(paid(customer, "o-1", "100.00"))
    await loyalty.publish(TOPIC_PROFILE, CloudEvent.new(
        type="crm.profile.customer.erased", source="crm/profile", subject=customer,
        data={"customer_id": customer, "erased_at": datetime.now(UTC).isoformat()}))
    await loyalty.applied(3)
    row = (await loyalty.database.fetch("SELECT birthday, erased_at FROM accounts WHERE customer_id = $1",
                                        customer))[0]
    assert row["birthday"] is None and row["erased_at"] is not None
    assert (await loyalty.account(customer))["pending"] == 100
    assert (await loyalty.job("birthdays", datetime(2027, 3, 10, tzinfo=UTC)))["members"] == 0
    async with loyalty.service.client() as http:
        refused = await loyalty.redeem(http, customer, 10)
    assert refused.status_code == 409


async def test_an_invalid_programme_is_refused_and_nothing_changes(loyalty):
    async with loyalty.service.client(SUPERVISOR) as http:
        before = (await http.get("/v1/loyalty/programme")).json()
        config = before["config"]
        config["tiers"]["levels"].reverse()  # highest first: refused
        refused = await http.put("/v1/loyalty/programme", json={"config": config})
        unknown = await http.put("/v1/loyalty/programme", json={"config": {"earnings": {}}})
        after = (await http.get("/v1/loyalty/programme")).json()
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert "entry tier" in refused.text
    assert unknown.status_code == 422
    assert after["version"] == before["version"]
