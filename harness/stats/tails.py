"""Null tails held in log10, so a bound far below the smallest float never becomes 0.

Every function returns a :class:`Tail`: an upper bound on a probability, exact (integer
counting, one final rounding of a ratio of integers) where the budget allows, and otherwise a
deterministic conservative inequality (Serfling's), never a Monte-Carlo estimate: a test with
fixed Monte-Carlo randomness exceeds its level (measured: 1.03 alpha at alpha = 0.01 with the
former seed-0 fallback), and fresh randomness would give each party a die to reroll.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: relative margin added to a float p (covers the rounding of log10 and 10**x)
ROUND_UP = 1e-9
LN10 = math.log(10.0)
TINY = math.nextafter(0.0, 1.0)
#: integer operations (additions of big integers) allowed for one exact rank-sum tail
RANK_SUM_BUDGET = 30_000_000
#: terms allowed in the inclusion-exclusion sum of the uniform-rank-sum tail
UNIFORM_SUM_TERMS = 20_000


@dataclass(frozen=True)
class Tail:
    """An upper bound on a probability, held as log10 (0 = probability one)."""

    log10: float
    method: str = "exact"

    @property
    def p(self) -> float:
        """The float value, rounded up and floored at the smallest positive float (never 0)."""
        if self.log10 >= 0:
            return 1.0
        return min(1.0, max(10.0**self.log10 * (1 + ROUND_UP), TINY))


def log10_ratio(num: int, den: int) -> float:
    """log10(num / den) for positive integers of any size (exact up to float rounding)."""
    if num <= 0:
        return -math.inf
    return min(0.0, math.log10(num) - math.log10(den))


def binomial_tail(x: int, n: int, q: int) -> Tail:
    """P(Binomial(n, 1/q) >= x), counted with Python integers: sum_{j>=x} C(n,j)(q-1)^(n-j) / q^n."""
    if q < 2:
        raise ValueError(f"q must be >= 2, got {q}")
    if not 0 <= x <= n:
        raise ValueError(f"x must be in [0, {n}], got {x}")
    if x == 0:
        return Tail(0.0)
    term = math.comb(n, x) * (q - 1) ** (n - x)
    num = 0
    for j in range(x, n + 1):
        num += term
        if j < n:  # C(n,j+1)(q-1)^(n-j-1) from C(n,j)(q-1)^(n-j), exactly
            term = term * (n - j) // ((j + 1) * (q - 1))
    return Tail(log10_ratio(num, q**n))


def _gaussian_binomial_low(n: int, k: int, degree: int) -> np.ndarray:
    """Coefficients 0..degree of the Gaussian binomial [n choose k]_q, as Python integers.

    [n choose k]_q = prod_{i=1..k} (1 - q^(n-k+i)) / (1 - q^i); its coefficient of q^s counts
    the k-subsets of {1..n} whose sum exceeds the smallest possible sum by s. Truncated
    products are exact: every intermediate series has integer coefficients.
    """
    c = np.zeros(degree + 1, dtype=object)
    c[0] = 1
    for i in range(1, k + 1):
        if i <= degree:  # divide by (1 - q^i): c[s] += c[s - i], a cumulative sum per residue
            width = -(-(degree + 1) // i) * i
            padded = np.zeros(width, dtype=object)
            padded[: degree + 1] = c
            c = np.cumsum(padded.reshape(-1, i), axis=0).ravel()[: degree + 1]
        a = n - k + i
        if a <= degree:  # multiply by (1 - q^a)
            c[a:] = c[a:] - c[: degree + 1 - a]
    return c


def rank_sum_tail(t: int, k: int, n: int) -> Tail:
    """P(sum of a uniform random k-subset of {1..n} <= t): exact, else Serfling's bound.

    Counting uses the Gaussian binomial on the smaller side of its symmetric coefficient
    sequence (the lower tail, or one minus the upper tail); its cost grows with
    min(k, n - k) * distance from the nearest end, so strong evidence (t near the smallest sum)
    is always counted exactly.
    """
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    smin = k * (k + 1) // 2
    span = k * (n - k)  # largest excess over smin
    d = t - smin
    if d < 0:
        return Tail(-math.inf)
    if d >= span:
        return Tail(0.0)
    kk = min(k, n - k)  # [n choose k]_q = [n choose n-k]_q
    upper = d > span // 2
    deg = span - d - 1 if upper else d  # upper: count excess >= d+1 as excess <= span-d-1
    if 2 * min(kk, deg + 1) * (deg + 1) <= RANK_SUM_BUDGET:
        count = int(sum(_gaussian_binomial_low(n, kk, deg)))
        total = math.comb(n, k)
        return Tail(log10_ratio(total - count if upper else count, total))
    return min(serfling_rank_sum_tail(t, k, n), chernoff_rank_sum_tail(t, k, n), key=_log10)


def _log10(tail: Tail) -> float:
    return tail.log10


def serfling_rank_sum_tail(t: int, k: int, n: int) -> Tail:
    """Serfling's (1974) inequality for a sample of k drawn without replacement from {1..n}:
    P(mean <= mu - eps) <= exp(-2 k eps^2 / ((1 - (k-1)/n) (n-1)^2)). Conservative, exact-free."""
    mu = (n + 1) / 2
    eps = mu - t / k
    if eps <= 0 or n == 1:
        return Tail(0.0, "Serfling")
    ln_p = -2 * k * eps * eps / ((1 - (k - 1) / n) * (n - 1) ** 2)
    return Tail(min(0.0, ln_p / LN10 * (1 - 1e-12)), "Serfling")


def chernoff_rank_sum_tail(t: int, k: int, n: int) -> Tail:
    """Chernoff bound through Hoeffding's (1963, Thm 4) comparison: for convex f, a sum drawn
    without replacement has E f no larger than the same-size sum drawn with replacement, so
    P(T <= t) <= min_l exp(l t) E[exp(-l R)]^k with R uniform on {1..n}. Any l > 0 gives a
    valid bound, so an inexact minimisation can only weaken it, never break it."""
    from scipy.optimize import minimize_scalar

    if t >= k * (n + 1) / 2:
        return Tail(0.0, "Chernoff")

    def log_bound(lam: float) -> float:  # l t + k log((1/n) sum_r exp(-l r)), stably
        log_mgf = -lam + math.log(-math.expm1(-lam * n)) - math.log(-math.expm1(-lam)) - math.log(n)
        return lam * t + k * log_mgf

    best = minimize_scalar(log_bound, bounds=(1e-12, 50.0), method="bounded")
    ln_p = min(0.0, float(log_bound(float(best.x))))
    return Tail(ln_p / LN10 * (1 - 1e-12), "Chernoff")


def uniform_sum_tail(t: int, k: int, size: int) -> Tail:
    """P(R_1 + ... + R_k <= t) for independent R_i uniform on {1..size}.

    Exact by inclusion-exclusion over how many terms exceed their range:
    #{y in [0, size-1]^k : sum y <= d} = sum_j (-1)^j C(k, j) C(d - j size + k, k), d = t - k.
    """
    if k < 1 or size < 1:
        raise ValueError(f"need k >= 1 and size >= 1, got k={k}, size={size}")
    d = t - k
    if d < 0:
        return Tail(-math.inf)
    if d >= k * (size - 1):
        return Tail(0.0)
    terms = d // size + 1
    if terms > UNIFORM_SUM_TERMS:
        return _uniform_sum_float([size] * k, t)
    count = 0
    for j in range(min(terms, k + 1)):
        count += (-1) ** j * math.comb(k, j) * math.comb(d - j * size + k, k)
    return Tail(log10_ratio(count, size**k))


def _uniform_sum_float(sizes: Sequence[int], t: int) -> Tail:
    """Float64 convolution of positive terms (relative error far below ROUND_UP), rounded up."""
    lo = len(sizes)
    if t < lo:
        return Tail(-math.inf)
    if t >= sum(sizes):
        return Tail(0.0)
    pmf = np.ones(1)
    cap = t - lo + 1
    for n in sizes:
        pmf = np.convolve(pmf, np.full(n, 1.0 / n))[:cap]
    p = float(pmf.sum()) * (1 + ROUND_UP)
    return Tail(0.0 if p >= 1 else math.log10(max(p, TINY)), "float convolution")


__all__ = [
    "Tail",
    "binomial_tail",
    "log10_ratio",
    "rank_sum_tail",
    "chernoff_rank_sum_tail",
    "serfling_rank_sum_tail",
    "uniform_sum_tail",
]
