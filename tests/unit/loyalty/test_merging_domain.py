"""Merging two books and undoing it (domain/merging.py): each ledger equals its balances and lots,
nothing is negative, and the duplicate gets back exactly what it is owed. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_loyalty.domain.ledger import Book
from crm_loyalty.domain.merging import hand_back, hand_over
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.loyalty.test_domain import _check

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _book(customer: str, available: int, pending: int, debt: int = 0) -> Book:
    book = Book(customer, lots=[])
    if available:
        lot = book.earn_pending(available, order_id=f"{customer}-a", business_at=T0, available_at=T0, reason="paid")
        book.release(lot, at=T0, expiry_months=12, reason="window closed")
    if pending:
        book.earn_pending(pending, order_id=f"{customer}-p", business_at=T0, available_at=T0 + timedelta(days=7),
                          reason="paid")
    if debt:
        spent = book.credit("bonus", debt, at=T0, expiry_months=12, reason="bonus")
        book.spend("redeem", debt, at=T0, reason="gift")
        book.reverse(spent, debt, at=T0, reason="taken back")
    return book


def _undo(survivor: Book, duplicate: Book, moved_lots, handed, at) -> None:
    """What merges.py does: the duplicate is owed what it brought, less what its lots still hold."""
    lots = [lot for lot in survivor.open_lots() if id(lot) in moved_lots]
    owed = handed.net - sum(lot.remaining for lot in lots)
    hand_back(survivor, duplicate, lots, owed=owed, lifetime_earned=handed.lifetime_earned, at=at,
              expiry_months=12, reason="unmerged")


def test_spent_points_of_the_duplicate_come_back_from_the_survivor_and_the_rest_is_debt():
    survivor, duplicate = _book("s", 100, 0), _book("d", 500, 50)
    moved = {id(lot) for lot in duplicate.open_lots()}
    handed = hand_over(duplicate, survivor, at=T0, reason_out="out", reason_in="in")
    assert (survivor.available, survivor.pending, duplicate.available, duplicate.pending) == (600, 50, 0, 0)
    survivor.spend("redeem", 550, at=T0, reason="gift")  # its own 100 and 450 of the duplicate's
    _undo(survivor, duplicate, moved, handed, T0 + timedelta(days=1))
    assert (duplicate.available, duplicate.pending, duplicate.debt) == (500, 50, 0)
    assert (survivor.available, survivor.pending, survivor.debt) == (0, 0, 450)
    assert [(m.kind, m.points) for m in duplicate.movements][-2:] == [("merge", -550), ("unmerge", 550)]
    assert [(m.kind, m.points) for m in survivor.movements][-1] == ("unmerge", -550)
    _check(survivor)
    _check(duplicate)


def test_the_survivors_debt_is_paid_from_the_points_that_arrive_and_owed_back_after():
    survivor, duplicate = _book("s", 0, 0, debt=80), _book("d", 200, 0)
    moved = {id(lot) for lot in duplicate.open_lots()}
    handed = hand_over(duplicate, survivor, at=T0, reason_out="out", reason_in="in")
    assert (survivor.available, survivor.debt) == (120, 0)
    _undo(survivor, duplicate, moved, handed, T0)
    assert (duplicate.available, survivor.available, survivor.debt) == (200, 0, 80)
    _check(survivor)
    _check(duplicate)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 500), st.integers(0, 500), st.integers(0, 300), st.integers(0, 500), st.integers(0, 300),
       st.integers(0, 300), st.integers(0, 800), st.integers(0, 400))
def test_merging_and_unmerging_keep_every_book_exact_and_the_duplicate_whole(
        s_available, s_pending, s_debt, d_available, d_pending, d_debt, spend, earned_after):
    survivor = _book("s", s_available, s_pending, s_debt)
    duplicate = _book("d", d_available, d_pending, d_debt)
    d_net = duplicate.available + duplicate.pending - duplicate.debt
    total = d_net + survivor.available + survivor.pending - survivor.debt
    moved = {id(lot) for lot in duplicate.open_lots()}
    handed = hand_over(duplicate, survivor, at=T0, reason_out="out", reason_in="in")
    _check(survivor)
    _check(duplicate)
    spent = min(spend, survivor.available)
    if spent:
        survivor.spend("redeem", spent, at=T0, reason="gift")
    if earned_after:
        survivor.credit("bonus", earned_after, at=T0, expiry_months=12, reason="after the merge")
    _undo(survivor, duplicate, moved, handed, T0 + timedelta(days=1))
    _check(survivor)
    _check(duplicate)
    assert duplicate.available + duplicate.pending - duplicate.debt == d_net
    assert survivor.available + survivor.pending - survivor.debt == total - d_net - spent + earned_after
