"""The BG/NBD fit against the published CDNOW estimates (Fader, Hardie and Lee 2005, Table/§5)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from crm_churn.domain.bgnbd import BgNbdParams, expected_purchases, fit, log_likelihood, p_alive

DATA = Path(__file__).parent / "data" / "cdnow_customers_summary.csv"
PUBLISHED = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


@pytest.fixture(scope="module")
def cdnow() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with DATA.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2357
    return tuple(np.array([float(r[k]) for r in rows]) for k in ("frequency", "recency", "T"))


def test_the_maximum_likelihood_fit_reproduces_the_papers_cdnow_estimates(cdnow):
    params, ll = fit(*cdnow)
    assert params.r == pytest.approx(PUBLISHED.r, abs=0.001)
    assert params.alpha == pytest.approx(PUBLISHED.alpha, abs=0.01)
    assert params.a == pytest.approx(PUBLISHED.a, abs=0.002)
    assert params.b == pytest.approx(PUBLISHED.b, abs=0.01)
    assert ll == pytest.approx(-9582.4, abs=0.1)  # the paper's log-likelihood
    assert log_likelihood(PUBLISHED, *cdnow) == pytest.approx(-9582.4, abs=0.5)


def test_p_alive_falls_as_a_repeat_buyers_silence_grows_and_is_one_without_repeats():
    ages = np.array([32.0, 36.0, 40.0, 52.0, 78.0])
    alive = p_alive(PUBLISHED, np.full(5, 4.0), np.full(5, 30.0), ages)
    assert np.all(np.diff(alive) < 0) and alive[0] > 0.8 and alive[-1] < 0.2
    assert p_alive(PUBLISHED, [0.0], [0.0], [78.0])[0] == 1.0


def test_expected_purchases_grow_with_frequency_and_fall_with_silence():
    busy = expected_purchases(PUBLISHED, 39.0, [6.0], [38.0], [39.0])[0]
    quiet = expected_purchases(PUBLISHED, 39.0, [6.0], [10.0], [39.0])[0]
    newcomer = expected_purchases(PUBLISHED, 39.0, [0.0], [0.0], [39.0])[0]
    assert busy > quiet > 0 and busy > newcomer > 0
    # The paper's Figure 4 scale: a customer with 2 repeats, last in week 30.43, age 38.86 (ID 1 in
    # CDNOW) expects about 1.2 purchases in the next 39 weeks.
    assert expected_purchases(PUBLISHED, 39.0, [2.0], [30.43], [38.86])[0] == pytest.approx(1.23, abs=0.05)
