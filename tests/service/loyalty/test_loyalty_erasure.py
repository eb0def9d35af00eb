"""Erasure in the loyalty service as a process: an erased member's numbers go on, messages to them do not."""

from __future__ import annotations

from crm_shared.events.catalogue import TOPIC_LOYALTY, TOPIC_NOTIFICATIONS, TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import new_customer_id
from tests.service.loyalty.conftest import NOW, SUPERVISOR, paid


async def test_an_erased_member_moves_up_a_tier_without_being_told(loyalty):
    erased, control = new_customer_id(), new_customer_id()
    async with loyalty.service.client(SUPERVISOR) as http:
        programme = (await http.get("/v1/loyalty/programme")).json()["config"]
        assert programme["tiers"]["levels"][1]["name"] == "vip"
        programme["tiers"]["levels"][1].update(min_spend="10", min_orders=1)
        assert (await http.put("/v1/loyalty/programme", json={"config": programme})).status_code == 200
    await loyalty.publish(TOPIC_PROFILE, CloudEvent.new(
        type="crm.profile.customer.erased", source="crm/profile", subject=erased,
        data={"customer_id": erased, "erased_at": NOW.isoformat()}))
    await loyalty.applied(1)
    await loyalty.orders(paid(erased, "o-erased", "100.00"), paid(control, "o-control", "100.00"))
    await loyalty.applied(3)
    changes = sorted((e.subject, e.data["old_tier"] or "", e.data["new_tier"])
                     for e in await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
                     if e.type == "crm.loyalty.tier.changed")
    # Each new account announces its entry tier (old tier null), then the upgrade.
    assert changes == sorted([(erased, "", "regular"), (erased, "regular", "vip"),
                              (control, "", "regular"), (control, "regular", "vip")])
    notes = await loyalty.broker.events_published_by(loyalty.database, TOPIC_NOTIFICATIONS)
    assert [(n.data["customer_id"], n.data["kind"]) for n in notes] == [(control, "tier_upgrade")]
    await loyalty.consistent()
