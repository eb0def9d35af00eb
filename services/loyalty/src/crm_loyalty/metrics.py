"""Business metrics of the loyalty service: points issued, redeemed, given back and expired; the
liability.

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

from decimal import Decimal

from crm_shared.metrics import DatabaseWideMetrics, ExporterElection
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import text

from crm_loyalty.domain.earning import money_value
from crm_loyalty.repository import ProgrammeStore

_BALANCES = text("""
    SELECT COALESCE(sum(available), 0) AS available, COALESCE(sum(pending), 0) AS pending,
           COALESCE(sum(debt), 0) AS debt, count(*) AS members
    FROM accounts
""")
_TOTALS = text("""
    SELECT COALESCE(sum(points) FILTER (WHERE kind IN ('earn', 'bonus') AND points > 0
                                           OR kind = 'adjust' AND points > 0), 0) AS issued,
           COALESCE(-sum(points) FILTER (WHERE kind = 'redeem' AND points < 0), 0) AS redeemed,
           COALESCE(sum(points) FILTER (WHERE kind = 'refund_of_spent' AND points > 0), 0) AS given_back,
           COALESCE(-sum(points) FILTER (WHERE kind = 'expire' AND points < 0), 0) AS expired,
           COALESCE(-sum(points) FILTER (WHERE kind = 'reverse' AND points < 0), 0) AS reversed,
           COALESCE(-sum(points) FILTER (WHERE kind = 'adjust' AND points < 0), 0) AS deducted
    FROM ledger
""")

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
        balances = (await db.execute(_BALANCES)).one()
        totals = (await db.execute(_TOTALS)).one()
        programme = (await self._store.timeline(db)).current
        return {
            **{name: int(getattr(totals, name)) for name, _ in _COUNTERS},
            "available": int(balances.available), "pending": int(balances.pending), "debt": int(balances.debt),
            "members": int(balances.members),
            "value": {currency: money_value(int(balances.available), rate)
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
