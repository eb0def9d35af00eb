"""Merging two members' books and undoing it. No I/O.

**Merge**: the duplicate's lots (with their expiry dates), balances and lifetime earnings join the
survivor's book; one ``merge`` ledger row on each side (out of the duplicate, into the survivor)
keeps each account equal to its own ledger. The survivor's debt is paid first from the points
that arrive, and the duplicate's debt from the survivor's points, as with any points that become
available.

**Unmerge**: the duplicate's lots go back as they are now, and what the survivor did with the
duplicate's points in between is settled between the two (``owed``, computed from the ledger by
the caller):

* points the survivor *spent* (or used to pay its own debt) come out of the survivor's available
  points, oldest expiry first; what it no longer has becomes its debt, never a negative balance.
  The duplicate gets them back as a fresh lot;
* a debt of the duplicate the survivor *paid off* comes back to the survivor as a fresh lot, and
  the duplicate owes it again (paid first from the points it gets back).

Points the duplicate's own orders gave or took since the merge (refunds, cancellations) and its
lots that expired count as the duplicate's; points the survivor earned after the merge stay with
the survivor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm_loyalty.domain.earning import months_later
from crm_loyalty.domain.ledger import AVAILABLE, PENDING, Book, Lot


@dataclass(frozen=True, slots=True)
class Handed:
    """What a duplicate's book held when it was merged."""

    available: int
    pending: int
    debt: int
    lifetime_earned: int

    @property
    def net(self) -> int:
        return self.available + self.pending - self.debt


def hand_over(duplicate: Book, survivor: Book, *, at: datetime, reason_out: str, reason_in: str) -> Handed:
    """Move the whole of ``duplicate`` (its open lots loaded) into ``survivor`` (lots loaded too)."""
    handed = Handed(duplicate.available, duplicate.pending, duplicate.debt, duplicate.lifetime_earned)
    lots = duplicate.open_lots()
    duplicate.lots = []
    duplicate.available = duplicate.pending = duplicate.debt = duplicate.lifetime_earned = 0
    if handed.available or handed.pending or handed.debt:
        duplicate._record("merge", -handed.net, -handed.available, -handed.pending, -handed.debt, at, reason_out)
    before = _balances(survivor)
    survivor.lots = [*survivor.open_lots(), *lots]
    survivor.available += handed.available
    survivor.pending += handed.pending
    survivor.debt += handed.debt
    survivor.lifetime_earned += handed.lifetime_earned
    _settle_debt(survivor, at)
    _record_change(survivor, "merge", before, at, reason_in)
    return handed


def hand_back(survivor: Book, duplicate: Book, lots: list[Lot], *, owed: int, lifetime_earned: int, at: datetime,
              expiry_months: int, reason: str) -> None:
    """Give ``duplicate`` back its ``lots`` (as they are now) and settle ``owed`` (module docstring)."""
    s_before, d_before = _balances(survivor), _balances(duplicate)
    moving = {id(lot) for lot in lots}
    survivor.lots = [lot for lot in survivor.open_lots() if id(lot) not in moving]
    for lot in lots:
        points = lot.remaining if lot.state in (AVAILABLE, PENDING) else 0
        if lot.state == AVAILABLE:
            survivor.available -= points
            duplicate.available += points
        elif lot.state == PENDING:
            survivor.pending -= points
            duplicate.pending += points
    duplicate.lots = [*duplicate.open_lots(), *lots]
    if owed > 0:
        from_available = min(owed, survivor.available)
        if from_available:
            survivor._take_available(from_available, at)
            survivor.available -= from_available
        survivor.debt += owed - from_available
        _fresh_lot(duplicate, owed, at, expiry_months)
    elif owed < 0:
        _fresh_lot(survivor, -owed, at, expiry_months)
        duplicate.debt -= owed
    _settle_debt(survivor, at)
    _settle_debt(duplicate, at)
    survivor.lifetime_earned -= lifetime_earned
    duplicate.lifetime_earned += lifetime_earned
    _record_change(survivor, "unmerge", s_before, at, reason)
    _record_change(duplicate, "unmerge", d_before, at, reason)


def _fresh_lot(book: Book, points: int, at: datetime, expiry_months: int) -> None:
    lot = Lot("unmerge", points, points, AVAILABLE, at, at, months_later(at, expiry_months))
    book._add_lot(lot)
    book.available += points


def _settle_debt(book: Book, at: datetime) -> None:
    """Debt and available points never stand side by side: the debt is paid first."""
    settled = min(book.debt, book.available)
    if settled:
        book._take_available(settled, at)
        book.available -= settled
        book.debt -= settled


def _balances(book: Book) -> tuple[int, int, int]:
    return book.available, book.pending, book.debt


def _record_change(book: Book, kind: str, before: tuple[int, int, int], at: datetime, reason: str) -> None:
    available, pending, debt = (now - then for now, then in zip(_balances(book), before, strict=True))
    if available or pending or debt:
        book._record(kind, available + pending - debt, available, pending, debt, at, reason)
