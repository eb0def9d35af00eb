"""A member's points book: lots, the movements that change them, and the debt policy. No I/O.

Every movement is one ledger row with three parts: what it does to the available balance, to
the pending balance and to the debt. The balances are nothing but the sums of those parts, and
each balance is also the sum of the lots it lives in, so the account can always be checked
against the ledger (tests do, after 1,000 random operations).

Points live in **lots**: one per earning (pending until the return window closes), bonus,
positive adjustment or set of points given back. Lots are spent oldest expiry first and expire
whole. **Debt policy**: a refund takes back the points its order earned, first from that order's
own lot, then from other available points (oldest expiry first); whatever the customer has
already spent beyond that becomes *debt*. The balance never goes negative; debt is paid off
first from any points that later become available (released earnings, bonuses, adjustments,
points given back) before the customer can spend them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from crm_loyalty.domain.earning import months_later

PENDING, AVAILABLE, CLOSED = "pending", "available", "closed"


class InsufficientPoints(Exception):
    def __init__(self, wanted: int, available: int) -> None:
        super().__init__(f"{wanted} points wanted, {available} available")
        self.wanted = wanted
        self.available = available


@dataclass(slots=True, eq=False)
class Lot:
    kind: str                       # earn | bonus | adjust | refund_of_spent
    points: int                     # as first credited
    remaining: int
    state: str                      # pending | available | closed
    business_at: datetime
    available_at: datetime | None   # pending: when the return window closes
    expires_at: datetime | None     # set once available
    order_id: str | None = None
    lot_id: int | None = None       # None until stored
    changed: bool = False

    def take(self, points: int) -> int:
        taken = min(points, self.remaining)
        self.remaining -= taken
        if self.remaining == 0:
            self.state = CLOSED
        self.changed = True
        return taken


@dataclass(slots=True)
class Movement:
    kind: str          # earn | release | redeem | reverse | refund_of_spent | expire | adjust | bonus
    points: int        # in the customer's favour: available + pending - debt
    available: int
    pending: int
    debt: int
    business_at: datetime
    reason: str
    order_id: str | None = None
    redemption_id: str | None = None
    actor: str | None = None
    ticket_id: str | None = None
    campaign: str | None = None
    lot: Lot | None = None
    event_id: str | None = None


@dataclass(slots=True, eq=False)
class Book:
    customer_id: str
    available: int = 0
    pending: int = 0
    debt: int = 0
    lifetime_earned: int = 0
    lots: list[Lot] | None = None          # open lots; loaded only when an operation needs them
    new_lots: list[Lot] = field(default_factory=list)
    movements: list[Movement] = field(default_factory=list)

    # -- credits ---------------------------------------------------------------------------------

    def earn_pending(self, points: int, *, order_id: str, business_at: datetime, available_at: datetime,
                     reason: str, campaign: str | None = None, event_id: str | None = None) -> Lot:
        lot = Lot("earn", points, points, PENDING if points else CLOSED, business_at, available_at, None,
                  order_id=order_id)
        self._add_lot(lot)
        self.pending += points
        self.lifetime_earned += points
        self._record("earn", points, 0, points, 0, business_at, reason, order_id=order_id, campaign=campaign,
                     lot=lot, event_id=event_id)
        return lot

    def release(self, lot: Lot, *, at: datetime, expiry_months: int, reason: str) -> None:
        """A pending lot becomes available (its order's return window closed); debt is paid first."""
        if lot.state != PENDING:
            return
        points = lot.remaining
        settled = min(self.debt, points)
        lot.state = AVAILABLE
        lot.expires_at = months_later(at, expiry_months)
        lot.changed = True
        lot.take(settled)
        self.pending -= points
        self.available += points - settled
        self.debt -= settled
        self._record("release", 0, points - settled, -points, -settled, at, reason, order_id=lot.order_id, lot=lot)

    def credit(self, kind: str, points: int, *, at: datetime, expiry_months: int, reason: str,
               **cause) -> Lot:
        """Points available at once (bonus, positive adjustment); debt is paid first."""
        lot = Lot(kind, points, points, AVAILABLE, at, at, months_later(at, expiry_months),
                  order_id=cause.get("order_id"))
        settled = min(self.debt, points)
        if settled:
            lot.take(settled)
        self._add_lot(lot)
        self.available += points - settled
        self.debt -= settled
        if kind == "bonus":
            self.lifetime_earned += points
        self._record(kind, points, points - settled, 0, -settled, at, reason, lot=lot, **cause)
        return lot

    def give_back(self, spent: list[tuple[Lot, int]], points: int, *, at: datetime, expiry_months: int,
                  reason: str, **cause) -> list[tuple[Lot, int]]:
        """Points spent on an order come back (cancel or refund) into the lots they came from,
        latest expiry first, keeping those lots' expiry dates; debt is paid first."""
        settled = min(self.debt, points)
        self.debt -= settled
        to_restore = points - settled
        restored: list[tuple[Lot, int]] = []
        for lot, taken in sorted(spent, key=lambda s: (s[0].expires_at or at, s[0].lot_id or 0), reverse=True):
            if to_restore == 0:
                break
            amount = min(taken, to_restore)
            lot.remaining += amount
            lot.state = AVAILABLE
            lot.changed = True
            to_restore -= amount
            restored.append((lot, amount))
        if to_restore:  # the lots are gone (never for a valid record of spending): a fresh lot
            fresh = Lot("refund_of_spent", to_restore, to_restore, AVAILABLE, at, at,
                        months_later(at, expiry_months), order_id=cause.get("order_id"))
            self._add_lot(fresh)
            restored.append((fresh, to_restore))
        self.available += points - settled
        self._record("refund_of_spent", points, points - settled, 0, -settled, at, reason, **cause)
        return restored

    # -- debits ----------------------------------------------------------------------------------

    def spend(self, kind: str, points: int, *, at: datetime, reason: str, **cause) -> list[tuple[Lot, int]]:
        """Redeem or deduct available points, oldest expiry first; never below zero."""
        if points > self.available:
            raise InsufficientPoints(points, self.available)
        taken = self._take_available(points, at)
        self.available -= points
        self._record(kind, -points, -points, 0, 0, at, reason, **cause)
        return taken

    def reverse(self, order_lot: Lot | None, points: int, *, at: datetime, reason: str, **cause) -> None:
        """Take back ``points`` earned on an order: its own lot, then other available points,
        then debt (module docstring)."""
        if points <= 0:
            return
        from_pending = from_available = 0
        left = points
        if order_lot is not None and order_lot.remaining:
            was_pending = order_lot.state == PENDING
            taken = order_lot.take(left)
            left -= taken
            if was_pending:
                from_pending += taken
            else:
                from_available += taken
        if left and self.available - from_available > 0:
            taken = sum(t for _, t in self._take_available(min(left, self.available - from_available), at))
            from_available += taken
            left -= taken
        self.pending -= from_pending
        self.available -= from_available
        self.debt += left
        self.lifetime_earned -= points
        self._record("reverse", -points, -from_available, -from_pending, left, at, reason, **cause)

    def expire(self, lot: Lot, *, at: datetime) -> int:
        points = lot.remaining
        if lot.state != AVAILABLE or points == 0:
            return 0
        lot.take(points)
        self.available -= points
        self._record("expire", -points, -points, 0, 0, at, "points expired", order_id=lot.order_id, lot=lot)
        return points

    # -- helpers ---------------------------------------------------------------------------------

    def open_lots(self) -> list[Lot]:
        if self.lots is None:
            raise RuntimeError("lots not loaded for this operation")
        return [lot for lot in self.lots if lot.state != CLOSED]

    def _take_available(self, points: int, at: datetime) -> list[tuple[Lot, int]]:
        lots = sorted((lot for lot in self.open_lots() if lot.state == AVAILABLE),
                      key=lambda lot: (lot.expires_at or at, lot.lot_id or 1 << 62))
        taken: list[tuple[Lot, int]] = []
        left = points
        for lot in lots:
            if left == 0:
                break
            amount = lot.take(left)
            if amount:
                taken.append((lot, amount))
                left -= amount
        if left:
            raise AssertionError(f"lots hold {points - left} available points, the account {self.available}")
        return taken

    def _add_lot(self, lot: Lot) -> None:
        self.new_lots.append(lot)
        if self.lots is not None:
            self.lots.append(lot)

    def _record(self, kind: str, points: int, available: int, pending: int, debt: int, at: datetime,
                reason: str, **cause) -> None:
        self.movements.append(Movement(kind, points, available, pending, debt, at, reason, **cause))
