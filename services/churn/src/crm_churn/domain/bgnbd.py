"""The BG/NBD model (Fader, Hardie and Lee 2005, "Counting your customers the easy way: an
alternative to the Pareto/NBD model", Marketing Science 24(2)). Pure numerics; no I/O.

Each customer is summarised as (x, t_x, T): repeat purchases, the time of the last one and the
customer's age, all since the first purchase and in the same unit (weeks here). The model: while
alive, a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after every purchase they
drop out with probability p ~ Beta(a, b). Its four parameters are fitted by maximum likelihood over
the whole customer base (equation 6 of the paper, computed in log space).

Written here rather than taken from ``lifetimes`` (unmaintained since 2020, pins old pandas) or
``btyd`` (a beta with few users): the likelihood is a dozen lines over numpy and scipy, and the
tests check it against the parameters the paper reports for the CDNOW sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


def _log_likelihood_terms(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    a4 = np.where(repeat, np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
                  -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def log_likelihood(params: BgNbdParams, x, t_x, T, weights=None) -> float:
    """The sample's log-likelihood (the paper reports −9,582.4 at its CDNOW estimates)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    terms = _log_likelihood_terms(np.array([params.r, params.alpha, params.a, params.b]), x, t_x, T)
    return float(np.sum(terms if weights is None else terms * np.asarray(weights, dtype=float)))


def fit(x, t_x, T, *, initial: BgNbdParams | None = None, penalty: float = 0.0) -> tuple[BgNbdParams, float]:
    """Maximum-likelihood parameters and the log-likelihood at them.

    Customers with the same (x, t_x, T) are one weighted row, so a base of 100,000 costs what its
    distinct summaries cost. Parameters are optimised on the log scale (they must stay positive);
    ``penalty`` adds an L2 term on the log-parameters for tiny or degenerate bases.
    """
    rows = np.column_stack([np.asarray(v, dtype=float) for v in (x, t_x, T)])
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    ux, ut, uT = unique[:, 0], unique[:, 1], unique[:, 2]
    weights = counts.astype(float)
    start = np.log([initial.r, initial.alpha, initial.a, initial.b]) if initial else np.log([1.0, 1.0, 1.0, 1.0])

    def objective(log_params: np.ndarray) -> float:
        params = np.exp(log_params)
        value = -np.sum(weights * _log_likelihood_terms(params, ux, ut, uT)) / weights.sum()
        return float(value + penalty * np.sum(log_params ** 2))

    # BFGS with finite-difference gradients: faster than Nelder-Mead on a large base for the same
    # log-likelihood (bench/churn.py, docs/benchmarks.md), and it reproduces the paper's CDNOW
    # estimates. Nelder-Mead remains the fallback.
    result = minimize(objective, start, method="BFGS", options={"gtol": 1e-6})
    if not (np.all(np.isfinite(result.x)) and np.isfinite(result.fun)):
        result = minimize(objective, start, method="Nelder-Mead",
                          options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 20_000, "maxfev": 40_000})
    r, alpha, a, b = np.exp(result.x)
    params = BgNbdParams(float(r), float(alpha), float(a), float(b))
    return params, log_likelihood(params, ux, ut, uT, weights)


def p_alive(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    """P(still a customer | x, t_x, T), equation (A2 of the 2008 note): 1 for a customer with no
    repeat purchase, which is why one-time buyers need the other indicators (see the scoring)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    ratio = np.where(repeat, a / np.where(repeat, b + x - 1, 1.0), 0.0)
    log_term = (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return 1.0 / (1.0 + ratio * np.exp(np.minimum(log_term, 700.0)))


def expected_purchases(params: BgNbdParams, t: float, x, t_x, T) -> np.ndarray:
    """Expected purchases in the next ``t`` time units given (x, t_x, T), equation (10)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    head = (a + b + x - 1) / (a - 1)
    tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    repeat = x > 0
    ratio = np.where(repeat, a / np.where(repeat, b + x - 1, 1.0), 0.0)
    denominator = 1 + ratio * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return head * tail / denominator


def prob_no_purchase(params: BgNbdParams, t: float, x, t_x, T) -> np.ndarray:
    """P(no purchase in the next ``t`` time units | x, t_x, T): the model's own churn probability.

    Dead customers buy nothing; an alive one has λ ~ Gamma(r + x, α + T) given the history, so
    P(no purchase in t | alive) = ((α + T) / (α + T + t))^(r + x). Unlike P(alive), this falls
    for a one-time buyer as their silence grows (the posterior rate shrinks with T), which is why
    the scoring builds on it.
    """
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    alive = p_alive(params, x, t_x, T)
    silent_while_alive = np.exp((params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + T + t)))
    return (1.0 - alive) + alive * silent_while_alive
