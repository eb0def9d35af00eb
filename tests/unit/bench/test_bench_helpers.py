"""The helpers every bench's published figures rest on: one percentile, and the e2e run's verdict
on the services' logs (unit: no servers)."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from bench.e2e import error_lines, verdict
from bench.stats import quantile


def test_quantiles_interpolate_between_the_two_nearest_ranks():
    assert quantile([3, 1, 2, 5, 4], 0.5) == 3
    assert quantile([10, 20], 0.5) == 15
    assert quantile([10, 20], 0.99) == pytest.approx(19.9)
    assert quantile(range(1, 101), 0.99) == pytest.approx(99.01)  # position 98.01 of 0 … 99
    assert (quantile([7, 1, 4], 0), quantile([7, 1, 4], 1)) == (1, 7)
    assert quantile([42.0], 0.99) == 42.0


def test_quantiles_are_those_of_the_standard_library_inclusive_method():
    values = [random.Random(7).expovariate(0.02) for _ in range(141)]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    assert [quantile(values, k / 100) for k in range(1, 100)] == pytest.approx(cuts)


@pytest.mark.parametrize("q", [99, -0.1, 1.01])
def test_a_percent_where_a_fraction_belongs_is_refused(q):
    with pytest.raises(ValueError, match="fraction"):
        quantile([1, 2, 3], q)


def test_no_values_have_no_quantile():
    with pytest.raises(ValueError, match="no values"):
        quantile([], 0.5)


def _line(level: str, event: str, **extra) -> str:
    return json.dumps({"event": event, "level": level, "service": "profile", **extra})


def test_a_service_log_with_errors_or_tracebacks_fails_the_run_and_is_named():
    clean = "\n".join([_line("info", "segments refreshed"),
                       _line("warning", "retrying batch after a transient failure")])
    noisy = "\n".join([
        _line("info", "started"),
        _line("error", "segment refresh failed", exception="Traceback (most recent call last):\\n  ..."),
        "Traceback (most recent call last):",  # printed, not logged
        '  File "x.py", line 1, in <module>',
        _line("critical", "giving up"),
    ])
    assert error_lines(clean) is None
    found = error_lines(noisy)
    assert found is not None and found["lines"] == 3 and found["first"][0].startswith('{"event": "segment refresh')
    assert verdict({}) == []
    assert verdict({"profile": found}) == ["profile logged 3 error or traceback line(s)"]
    assert verdict({}, "RuntimeError: the warm-up did not drain") == [
        "the run was aborted: RuntimeError: the warm-up did not drain"]
