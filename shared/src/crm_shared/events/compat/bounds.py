"""Numeric bounds (``minimum``/``maximum`` and their exclusive forms, lengths, counts) as exact fractions."""

from __future__ import annotations

from fractions import Fraction
from typing import Any


def _num(value: Any) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return Fraction(value)


def _bound(node: dict[str, Any], lower: bool, integer: bool) -> tuple[Fraction, bool] | str | None:
    """The tightest lower (or upper) bound as ``(value, exclusive)``; ``None`` if unbounded; a str on
    a keyword it cannot read (draft-4 boolean ``exclusiveMinimum``)."""
    inclusive_key, exclusive_key = ("minimum", "exclusiveMinimum") if lower else ("maximum", "exclusiveMaximum")
    candidates: list[tuple[Fraction, bool]] = []
    for key, exclusive in ((inclusive_key, False), (exclusive_key, True)):
        if key in node:
            value = _num(node[key])
            if value is None:
                return f"cannot read {key}={node[key]!r}"
            candidates.append((value, exclusive))
    if not candidates:
        return None
    if integer:  # an integer > 0 is an integer >= 1
        normalised = []
        for value, exclusive in candidates:
            if lower:
                v = (value.__floor__() + 1) if exclusive else value.__ceil__()
            else:
                v = (value.__ceil__() - 1) if exclusive else value.__floor__()
            normalised.append((Fraction(v), False))
        candidates = normalised
    if lower:
        return max(candidates, key=lambda c: (c[0], c[1]))
    return min(candidates, key=lambda c: (c[0], not c[1]))


def _show_bound(bound: tuple[Fraction, bool] | None, lower: bool) -> str:
    if bound is None:
        return "none"
    value, exclusive = bound
    op = (">" if exclusive else ">=") if lower else ("<" if exclusive else "<=")
    shown = str(value.numerator) if value.denominator == 1 else str(float(value))
    return f"{op} {shown}"


def _bound_covers(sub: tuple[Fraction, bool] | None, sup: tuple[Fraction, bool] | None, lower: bool) -> bool:
    """Does the ``sup`` bound let through everything the ``sub`` bound does?"""
    if sup is None:
        return True
    if sub is None:
        return False
    (sv, sx), (pv, px) = sub, sup
    if sv == pv:
        return sx or not px
    return pv < sv if lower else pv > sv


# --------------------------------------------------------------------------- the proof
