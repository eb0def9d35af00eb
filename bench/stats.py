"""The one definition of a percentile that every bench publishes (docs/benchmarks.md, "Percentiles")."""

from __future__ import annotations

import math
from collections.abc import Iterable


def quantile(values: Iterable[float], q: float) -> float:
    """The ``q``-quantile of ``values`` (0 ≤ q ≤ 1: p50 is 0.5, p99 is 0.99), by linear interpolation
    between the two nearest ranks.

    Sorted ascending, the values sit at positions 0 … n − 1; the quantile is at position
    (n − 1) · q, interpolated between its neighbours when that falls between two. This is
    numpy.percentile's default ("linear"), R's type 7, Excel's PERCENTILE.INC and
    ``statistics.quantiles(method="inclusive")``. q = 0 is the minimum and q = 1 the maximum.
    Interpolation was chosen over nearest-rank because a p99 of a hundred or so samples then
    moves with the data instead of jumping from one observed value to the next.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q is a fraction between 0 and 1 (p99 is 0.99), not {q}")
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
