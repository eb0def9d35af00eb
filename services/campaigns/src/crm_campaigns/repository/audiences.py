"""Audiences as SQL over the members' projection: a definition's filters become one WHERE clause
with bound parameters (never text from the caller in the SQL itself).

A definition (docs/campaigns.md) is a JSON object; every filter is optional and they combine with
AND: segments_any / segments_all / segments_none, rfm_segments, tiers, churn_levels,
churn_score_min / churn_score_max, value_min / value_max, orders_min / orders_max,
last_order_within_days, no_order_for_days, categories_any, birthday_month, points_min, locales.
The channel's consent is always required.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from crm_campaigns.repository.base import Sql

CONSENT_COLUMN = {"email": "consent_email", "sms": "consent_sms"}


def audience_where(definition: Mapping[str, Any], channel: str | None, now: datetime) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (on ``members m``) and its parameters."""
    clauses: list[str] = []
    params: dict[str, Any] = {}

    def add(clause: str, **values: Any) -> None:
        clauses.append(clause)
        params.update(values)

    d = definition
    if channel in CONSENT_COLUMN:
        clauses.append(f"m.{CONSENT_COLUMN[channel]}")
    if d.get("segments_any"):
        add("m.segments && CAST(:segments_any AS text[])", segments_any=list(d["segments_any"]))
    if d.get("segments_all"):
        add("m.segments @> CAST(:segments_all AS text[])", segments_all=list(d["segments_all"]))
    if d.get("segments_none"):
        add("NOT (m.segments && CAST(:segments_none AS text[]))", segments_none=list(d["segments_none"]))
    if d.get("rfm_segments"):
        add("m.segments && CAST(:rfm AS text[])", rfm=[f"rfm:{s}" for s in d["rfm_segments"]])
    if d.get("tiers"):
        add("m.tier = ANY(CAST(:tiers AS text[]))", tiers=list(d["tiers"]))
    if d.get("churn_levels"):
        add("m.churn_level = ANY(CAST(:churn_levels AS text[]))", churn_levels=list(d["churn_levels"]))
    if d.get("churn_score_min") is not None:
        add("m.churn_score >= :churn_score_min", churn_score_min=float(d["churn_score_min"]))
    if d.get("churn_score_max") is not None:
        add("m.churn_score <= :churn_score_max", churn_score_max=float(d["churn_score_max"]))
    if d.get("value_min") is not None:
        add("m.value >= :value_min", value_min=Decimal(str(d["value_min"])))
    if d.get("value_max") is not None:
        add("m.value <= :value_max", value_max=Decimal(str(d["value_max"])))
    if d.get("orders_min") is not None:
        add("m.order_count >= :orders_min", orders_min=int(d["orders_min"]))
    if d.get("orders_max") is not None:
        add("m.order_count <= :orders_max", orders_max=int(d["orders_max"]))
    if d.get("last_order_within_days") is not None:
        add("m.last_order_at >= :ordered_since", ordered_since=now - timedelta(days=int(d["last_order_within_days"])))
    if d.get("no_order_for_days") is not None:
        add("(m.last_order_at IS NULL OR m.last_order_at < :quiet_since)",
            quiet_since=now - timedelta(days=int(d["no_order_for_days"])))
    if d.get("categories_any"):
        add("m.categories && CAST(:categories AS text[])", categories=list(d["categories_any"]))
    if d.get("birthday_month") is not None:
        add("m.birthday_month = :birthday_month", birthday_month=int(d["birthday_month"]))
    if d.get("points_min") is not None:
        add("m.points_available >= :points_min", points_min=int(d["points_min"]))
    if d.get("locales"):
        add("m.locale = ANY(CAST(:locales AS text[]))", locales=list(d["locales"]))
    return (" AND ".join(clauses) or "true"), params


@dataclass(frozen=True)
class Occasion:
    """Who a recurring campaign's occurrence is for: the members of one time zone (``None``: those
    without one, who get ``default_zone``'s day) whose birthday or registration falls on one of
    ``days`` ((month, day) pairs), or all of them (holidays, member days)."""

    time_zone: str | None
    days: tuple[tuple[int, int], ...] = ()
    on: str | None = None  # "birthday" or "anniversary" (with days); None: everyone in the zone
    registered_before: date | None = None


def _occasion_where(o: Occasion) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"zone": o.time_zone}
    clause = "m.time_zone IS NULL" if o.time_zone is None else "m.time_zone = :zone"
    if o.on is not None:
        months, days = [m for m, _ in o.days], [d for _, d in o.days]
        column = "birthday" if o.on == "birthday" else "registered"
        pair = ("(m.birthday_month, m.birthday_day)" if column == "birthday" else
                "(CAST(extract(month FROM m.registered_on) AS int), CAST(extract(day FROM m.registered_on) AS int))")
        clause += f" AND {pair} IN (SELECT * FROM unnest(CAST(:months AS int[]), CAST(:days AS int[])))"
        params.update(months=months, days=days)
        if o.on == "anniversary":
            clause += " AND m.registered_on < :registered_before"
            params["registered_before"] = o.registered_before
    return clause, params


class AudiencesSql(Sql):
    async def count_audience(self, definition: Mapping[str, Any], channel: str | None, now: datetime) -> int:
        where, params = audience_where(definition, channel, now)
        return (await self.conn.execute(text(f"SELECT count(*) FROM members m WHERE {where}"), params)).scalar_one()

    async def audience_page(self, definition: Mapping[str, Any], channel: str | None, now: datetime, *,
                            after: str, limit: int, occasion: Occasion | None = None) -> list[Any]:
        """Members in the audience, by customer id after ``after`` (keyset pages); with an
        ``occasion``, only those whose local day it is (a recurring campaign's planner)."""
        where, params = audience_where(definition, channel, now)
        extra = "true"
        if occasion is not None:
            extra, more = _occasion_where(occasion)
            params.update(more)
        sql = text(f"""SELECT m.customer_id, m.time_zone FROM members m
                       WHERE {where} AND {extra} AND m.customer_id > :after
                       ORDER BY m.customer_id LIMIT :limit""")
        return list(await self.conn.execute(sql, {**params, "after": after, "limit": limit}))

    async def in_audience(self, definition: Mapping[str, Any], channel: str | None, now: datetime,
                          customer_ids: Sequence[str]) -> set[str]:
        where, params = audience_where(definition, channel, now)
        sql = text(f"SELECT m.customer_id FROM members m WHERE {where} AND m.customer_id = ANY(CAST(:ids AS text[]))")
        return {r.customer_id for r in await self.conn.execute(sql, {**params, "ids": list(customer_ids)})}

    async def time_zones(self) -> list[str | None]:
        return [r.time_zone for r in await self.conn.execute(text("SELECT DISTINCT time_zone FROM members"))]

    async def member(self, customer_id: str) -> Any:
        """The projection of one member (locale, zone, tier, points: a message's variables)."""
        return (await self.conn.execute(text("SELECT * FROM members WHERE customer_id = :c"),
                                        {"c": customer_id})).first()
