"""Business metrics of the loyalty service: points issued, redeemed, given back and expired; the
liability (points, coupons outstanding and their face value, rewards owed).

They are read from the database (the accounts and the ledger), not counted in the process: a
batch that is rolled back and retried would count twice, and several replicas would each count
only their share. Being database-wide, they are exported by one replica only
(crm_shared.metrics.DatabaseWideMetrics), so ``sum`` over replicas is the figure itself.

Each counter is a sum of one sign of one kind of ledger entry. The ledger is append-only (a
trigger refuses anything else), so every counter only goes up; what undoes a movement is a
counter of its own (points given back to a redemption, earned points reversed), never a
subtraction, which Prometheus would read as a counter reset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from crm_shared.metrics import DatabaseWideMetrics, ExporterElection
from crm_shared.uow import UnitOfWork
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from crm_loyalty.domain.earning import money_value
from crm_loyalty.repository import LoyaltyRepository
from crm_loyalty.usecases.common import ProgrammeStore

_COUNTERS = (
    ("issued", "Points issued: earned on orders, bonuses, positive adjustments."),
    ("redeemed", "Points redeemed (gross; points given back are crm_loyalty_points_given_back)."),
    ("given_back", "Redeemed points given back by cancels and refunds of the orders they paid."),
    ("expired", "Points expired."),
    ("reversed", "Earned points taken back by cancels and refunds."),
    ("deducted", "Points taken away by negative adjustments."),
)


class LoyaltyMetrics(DatabaseWideMetrics):
    def __init__(self, registry, election: ExporterElection, store: ProgrammeStore) -> None:
        self._store = store
        super().__init__(registry, election)

    async def read(self, db) -> dict:
        uow = UnitOfWork(db, LoyaltyRepository)  # reads only, through the repository
        totals = await uow.repo.totals()
        programme = (await self._store.timeline(uow)).current
        return {
            **{name: totals[name] for name, _ in _COUNTERS},
            "available": totals["available"], "pending": totals["pending"], "debt": totals["debt"],
            "members": totals["members"],
            "coupon_uses": await uow.repo.coupon_use_totals(),
            "coupons": await uow.repo.coupons_outstanding(datetime.now(UTC)),
            "rewards_owed": (await uow.repo.rewards_owed())[0],
            "value": {currency: money_value(totals["available"], rate)
                      for currency, rate in programme.redemption.points_per_unit.items()},
        }

    def families(self, snapshot: dict):
        for name, help_text in _COUNTERS:
            counter = CounterMetricFamily(f"crm_loyalty_points_{name}", help_text)
            counter.add_metric([], snapshot[name])
            yield counter
        liability = GaugeMetricFamily("crm_loyalty_liability_points",
                                      "Outstanding points the shop owes its members, by state.", labels=["state"])
        liability.add_metric(["available"], snapshot["available"])
        liability.add_metric(["pending"], snapshot["pending"])
        yield liability
        debt = GaugeMetricFamily("crm_loyalty_debt_points", "Points members owe after refunds of spent points.")
        debt.add_metric([], snapshot["debt"])
        yield debt
        value = GaugeMetricFamily("crm_loyalty_liability_value",
                                  "What the available points are worth off orders, per currency.",
                                  labels=["currency"])
        for currency, amount in snapshot["value"].items():
            value.add_metric([currency], float(Decimal(amount)))
        yield value
        members = GaugeMetricFamily("crm_loyalty_members", "Loyalty accounts.")
        members.add_metric([], snapshot["members"])
        yield members
        # Applied counts every use ever applied (released ones too): each outcome only goes up.
        coupon_uses = CounterMetricFamily("crm_loyalty_coupon_uses", "Coupon uses by paid orders, by outcome: "
                                          "applied, released (order cancelled), refused (limit, window, cart...).",
                                          labels=["outcome"])
        for outcome in ("applied", "released", "refused"):
            coupon_uses.add_metric([outcome], snapshot["coupon_uses"][outcome])
        yield coupon_uses
        outstanding = GaugeMetricFamily("crm_loyalty_liability_coupons",
                                        "Coupons still usable (active, valid, a use left), by discount kind.",
                                        labels=["discount_kind"])
        face_value = GaugeMetricFamily("crm_loyalty_liability_coupons_face_value",
                                       "Fixed-amount coupons: the amount off times the uses left, per currency.",
                                       labels=["currency"])
        kinds: dict[str, int] = {"percent": 0, "amount": 0, "free_shipping": 0}
        values: dict[str, Decimal] = {}
        for row in snapshot["coupons"]:
            kinds[row["discount_kind"]] = kinds.get(row["discount_kind"], 0) + int(row["coupons"])
            if row["discount_kind"] == "amount":
                values[row["currency"]] = values.get(row["currency"], Decimal(0)) + row["face_value"]
        for kind, count in kinds.items():
            outstanding.add_metric([kind], count)
        for currency, amount in values.items():
            face_value.add_metric([currency], float(amount))
        yield outstanding
        yield face_value
        owed = GaugeMetricFamily("crm_loyalty_liability_rewards_owed",
                                 "Reward redemptions not yet delivered, by fulfilment status.", labels=["status"])
        by_status = {row["status"]: int(row["redemptions"]) for row in snapshot["rewards_owed"]}
        for status in ("requested", "shipped"):
            owed.add_metric([status], by_status.get(status, 0))
        yield owed
