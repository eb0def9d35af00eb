"""The reward catalogue's SQL: rewards and their stock, reward redemptions and their fulfilment
history, and the members' segments. Repositories never commit.

Lock order (as everywhere): the member's account first (``lock_members``), then the reward row
(the stock ``UPDATE``), then the redemption row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text

from crm_loyalty.domain.ledger import Lot
from crm_loyalty.repository.base import Sql

REWARD_COLUMNS = """reward_id, name, description, kind, points_price, cash_price, cash_currency, sku, coupon_pool_id,
    stock, redeemed_count, available_from, available_until, eligible_tiers, eligible_segments, per_customer_limit,
    limit_period_days, active, created_by, created_at, updated_at, version"""
_EDITABLE = ("name", "description", "kind", "points_price", "cash_price", "cash_currency", "sku", "coupon_pool_id",
             "stock", "available_from", "available_until", "eligible_tiers", "eligible_segments",
             "per_customer_limit", "limit_period_days", "active")

_INSERT_REWARD = text(f"""
    INSERT INTO rewards (reward_id, {', '.join(_EDITABLE)}, created_by)
    VALUES (:reward_id, {', '.join(f':{c}' for c in _EDITABLE)}, :created_by)
    ON CONFLICT (reward_id) DO NOTHING
    RETURNING {REWARD_COLUMNS}
""")
# Optimistic concurrency: the version the caller read, or any version when it named none.
_REPLACE_REWARD = text(f"""
    UPDATE rewards SET {', '.join(f'{c} = :{c}' for c in _EDITABLE)}, updated_at = now(), version = version + 1
    WHERE reward_id = :reward_id AND (CAST(:if_version AS integer) IS NULL OR version = :if_version)
    RETURNING {REWARD_COLUMNS}
""")
_REWARD = text(f"SELECT {REWARD_COLUMNS} FROM rewards WHERE reward_id = :reward_id")
_REWARD_PAGE = text(f"""
    SELECT {REWARD_COLUMNS} FROM rewards
    WHERE reward_id > :after
      AND (CAST(:all AS boolean) OR (active AND (available_from IS NULL OR available_from <= :at)
                                     AND (available_until IS NULL OR available_until > :at)))
    ORDER BY reward_id LIMIT :limit
""")
# One statement takes the stock: the row lock it waits for serialises concurrent redemptions of the
# reward, and each re-reads the stock left by the one before, so it is never oversold. The version
# moves too, so a supervisor's PUT of the stock with a stale If-Match cannot undo redemptions.
_TAKE_STOCK = text(f"""
    UPDATE rewards SET stock = stock - :quantity, redeemed_count = redeemed_count + :quantity,
                       version = version + 1
    WHERE reward_id = :reward_id AND (stock IS NULL OR stock >= :quantity)
    RETURNING {REWARD_COLUMNS}
""")
_RETURN_STOCK = text("""
    UPDATE rewards SET stock = stock + :quantity, redeemed_count = greatest(redeemed_count - :quantity, 0),
                       version = version + 1
    WHERE reward_id = :reward_id
""")
_UNITS_REDEEMED = text("""
    SELECT COALESCE(sum(quantity), 0) FROM redemptions
    WHERE customer_id = :customer_id AND reward_id = :reward_id AND fulfilment_status <> 'cancelled'
      AND (CAST(:since AS timestamptz) IS NULL OR created_at > :since)
""")
_UNITS_REDEEMED_MANY = text("""
    SELECT t.reward_id, COALESCE(sum(r.quantity), 0) AS units
    FROM unnest(CAST(:reward_ids AS text[]), CAST(:sinces AS timestamptz[])) AS t(reward_id, since)
    LEFT JOIN redemptions r ON r.customer_id = :customer_id AND r.reward_id = t.reward_id
         AND r.fulfilment_status <> 'cancelled' AND (t.since IS NULL OR r.created_at > t.since)
    GROUP BY t.reward_id
""")
_SET_COUPON = text("UPDATE redemptions SET coupon_id = :coupon_id WHERE redemption_id = :redemption_id")
_INSERT_REWARD_REDEMPTION = text("""
    WITH redemption AS (
        INSERT INTO redemptions (redemption_id, customer_id, kind, points, currency, money_value, gift_sku, reason,
                                 actor, created_at, status, resolved_at, reward_id, quantity, cash_due,
                                 cash_currency, fulfilment_status)
        VALUES (:redemption_id, :customer_id, 'reward', :points, NULL, NULL, :sku, :reason, :actor, :created_at,
                'applied', :created_at, :reward_id, :quantity, :cash_due, :cash_currency, :fulfilment_status)
    ), history AS (
        INSERT INTO reward_fulfilment_history (redemption_id, status, at, actor)
        VALUES (:redemption_id, :fulfilment_status, :created_at, :actor)
    )
    INSERT INTO redemption_lots (redemption_id, lot_id, points)
    SELECT :redemption_id, * FROM unnest(CAST(:lot_ids AS bigint[]), CAST(:lot_points AS bigint[]))
""")
_REDEMPTION_COLUMNS = """r.redemption_id, r.customer_id, r.reward_id, w.name AS reward_name, w.kind AS reward_kind,
    r.quantity, r.points, r.points_returned, r.cash_due, r.cash_currency, r.fulfilment_status, r.coupon_id,
    r.created_at, r.actor"""
_REWARD_REDEMPTION = text(f"""
    SELECT {_REDEMPTION_COLUMNS} FROM redemptions r LEFT JOIN rewards w USING (reward_id)
    WHERE r.redemption_id = :redemption_id AND r.kind = 'reward'
""")
_REWARD_REDEMPTION_FOR_UPDATE = text(f"""
    SELECT {_REDEMPTION_COLUMNS} FROM redemptions r LEFT JOIN rewards w USING (reward_id)
    WHERE r.redemption_id = :redemption_id AND r.kind = 'reward'
    FOR UPDATE OF r
""")
_REWARD_REDEMPTIONS_OF = text(f"""
    SELECT {_REDEMPTION_COLUMNS} FROM redemptions r LEFT JOIN rewards w USING (reward_id)
    WHERE r.customer_id = :customer_id AND r.kind = 'reward'
    ORDER BY r.created_at DESC, r.redemption_id LIMIT :limit
""")
_SET_FULFILMENT = text("""
    WITH history AS (
        INSERT INTO reward_fulfilment_history (redemption_id, status, at, actor, note, event_id)
        VALUES (:redemption_id, :status, :at, :actor, :note, :event_id)
    )
    UPDATE redemptions SET fulfilment_status = :status WHERE redemption_id = :redemption_id
""")
_HISTORY = text("""
    SELECT status, at, actor, note FROM reward_fulfilment_history
    WHERE redemption_id = :redemption_id ORDER BY entry_id
""")
_SEGMENTS_OF = text("SELECT segment_id FROM member_segments WHERE customer_id = :customer_id")
_ENTER_SEGMENTS = text("""
    INSERT INTO member_segments (customer_id, segment_id, since)
    SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:segment_ids AS text[]), CAST(:ats AS timestamptz[]))
    ON CONFLICT (customer_id, segment_id) DO NOTHING
""")
_EXIT_SEGMENTS = text("""
    DELETE FROM member_segments m
    USING unnest(CAST(:customer_ids AS text[]), CAST(:segment_ids AS text[])) AS t(customer_id, segment_id)
    WHERE m.customer_id = t.customer_id AND m.segment_id = t.segment_id
""")
_FORGET_SEGMENTS = text("DELETE FROM member_segments WHERE customer_id = ANY(CAST(:ids AS text[]))")
_FORGET_NOTES = text("""
    UPDATE reward_fulfilment_history h SET note = NULL FROM redemptions r
    WHERE r.redemption_id = h.redemption_id AND r.customer_id = ANY(CAST(:ids AS text[])) AND h.note IS NOT NULL
""")


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


class RewardsSql(Sql):
    # -- the catalogue ----------------------------------------------------------------------------

    async def insert_reward(self, reward: dict[str, Any]) -> dict[str, Any] | None:
        """The new reward, or None when its id is taken."""
        row = (await self.conn.execute(_INSERT_REWARD, reward)).first()
        return _row(row) if row is not None else None

    async def replace_reward(self, reward_id: str, fields: dict[str, Any], if_version: int | None
                             ) -> dict[str, Any] | None:
        """The reward with its editable fields replaced, or None (no such reward, or not at ``if_version``)."""
        row = (await self.conn.execute(_REPLACE_REWARD, {**fields, "reward_id": reward_id,
                                                         "if_version": if_version})).first()
        return _row(row) if row is not None else None

    async def reward(self, reward_id: str) -> dict[str, Any] | None:
        row = (await self.conn.execute(_REWARD, {"reward_id": reward_id})).first()
        return _row(row) if row is not None else None

    async def reward_page(self, *, after: str, limit: int, at: datetime, include_unavailable: bool
                          ) -> list[dict[str, Any]]:
        return [_row(row) for row in await self.conn.execute(_REWARD_PAGE, {
            "after": after, "limit": limit, "at": at, "all": include_unavailable})]

    async def take_stock(self, reward_id: str, quantity: int) -> dict[str, Any] | None:
        """Take ``quantity`` units (locking the reward's row): the reward after, or None when short."""
        row = (await self.conn.execute(_TAKE_STOCK, {"reward_id": reward_id, "quantity": quantity})).first()
        return _row(row) if row is not None else None

    async def return_stock(self, reward_id: str, quantity: int) -> None:
        """Units back into stock (an unlimited reward stays unlimited: NULL + n is NULL)."""
        await self.conn.execute(_RETURN_STOCK, {"reward_id": reward_id, "quantity": quantity})

    # -- reward redemptions -----------------------------------------------------------------------

    async def units_redeemed(self, customer_id: str, reward_id: str, since: datetime | None) -> int:
        """Units of the reward the member redeemed since ``since`` (None: ever), cancelled ones aside."""
        return (await self.conn.execute(_UNITS_REDEEMED, {"customer_id": customer_id, "reward_id": reward_id,
                                                          "since": since})).scalar() or 0

    async def units_redeemed_many(self, customer_id: str, since_by_reward: dict[str, datetime | None]
                                  ) -> dict[str, int]:
        """``units_redeemed`` for several rewards at once (one round trip)."""
        if not since_by_reward:
            return {}
        rows = await self.conn.execute(_UNITS_REDEEMED_MANY, {
            "customer_id": customer_id, "reward_ids": list(since_by_reward), "sinces": list(since_by_reward.values())})
        return {row.reward_id: int(row.units) for row in rows}

    async def set_reward_coupon(self, redemption_id: str, coupon_id: str) -> None:
        """The coupon issued for a digital reward's redemption (its id; the code stays with the coupon)."""
        await self.conn.execute(_SET_COUPON, {"redemption_id": redemption_id, "coupon_id": coupon_id})

    async def insert_reward_redemption(self, redemption: dict[str, Any], taken: Sequence[tuple[Lot, int]]) -> None:
        """A reward redemption, the lots it spent and its first fulfilment status, in one statement."""
        await self.conn.execute(_INSERT_REWARD_REDEMPTION, {
            **redemption, "lot_ids": [lot.lot_id for lot, _ in taken], "lot_points": [points for _, points in taken]})

    async def reward_redemption(self, redemption_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
        statement = _REWARD_REDEMPTION_FOR_UPDATE if for_update else _REWARD_REDEMPTION
        row = (await self.conn.execute(statement, {"redemption_id": redemption_id})).first()
        return _row(row) if row is not None else None

    async def reward_redemptions_of(self, customer_id: str, limit: int) -> list[dict[str, Any]]:
        return [_row(row) for row in await self.conn.execute(_REWARD_REDEMPTIONS_OF, {
            "customer_id": customer_id, "limit": limit})]

    async def set_fulfilment(self, redemption_id: str, status: str, *, at: datetime, actor: str, note: str | None,
                             event_id: str | None) -> None:
        await self.conn.execute(_SET_FULFILMENT, {"redemption_id": redemption_id, "status": status, "at": at,
                                                  "actor": actor, "note": note, "event_id": event_id})

    async def fulfilment_history(self, redemption_id: str) -> list[dict[str, Any]]:
        return [_row(row) for row in await self.conn.execute(_HISTORY, {"redemption_id": redemption_id})]

    # -- segments ---------------------------------------------------------------------------------

    async def segments_of(self, customer_id: str) -> set[str]:
        return {row.segment_id for row in await self.conn.execute(_SEGMENTS_OF, {"customer_id": customer_id})}

    async def enter_segments(self, rows: Sequence[tuple[str, str, datetime]]) -> None:
        if rows:
            await self.conn.execute(_ENTER_SEGMENTS, {"customer_ids": [c for c, _, _ in rows],
                                                      "segment_ids": [s for _, s, _ in rows],
                                                      "ats": [at for _, _, at in rows]})

    async def exit_segments(self, pairs: Sequence[tuple[str, str]]) -> None:
        if pairs:
            await self.conn.execute(_EXIT_SEGMENTS, {"customer_ids": [c for c, _ in pairs],
                                                     "segment_ids": [s for _, s in pairs]})

    async def forget_reward_data(self, customer_ids: Sequence[str]) -> None:
        """Erasure: the members' segments and the notes written about their rewards' fulfilment."""
        if customer_ids:
            await self.conn.execute(_FORGET_SEGMENTS, {"ids": list(customer_ids)})
            await self.conn.execute(_FORGET_NOTES, {"ids": list(customer_ids)})
