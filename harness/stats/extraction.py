"""Exact bounds for verbatim extraction of random canaries (STATISTICS.md section 5).

A canary is a public prefix followed by a secret suffix of L units drawn i.i.d. uniformly from
an alphabet A (words of a pinned list, or token ids). Under H0 the model is independent of the
secret suffix, so any continuation the auditor obtains from the public prefix (greedy, or
sampled with randomness that does not depend on the suffix) is independent of the suffix too.
Matching is position-wise: unit j of the continuation against unit j of the suffix. Each
position then matches with probability 1/|A| if the continuation's unit lies in A and 0 if it
does not, independently across positions, so the number of matches is stochastically at most
Binomial(L, 1/|A|); over K canaries the matches add up to at most Binomial(K L, 1/|A|).

With n continuations per canary the best of them is bounded by the union bound,
P(max_j X_j >= x) <= min(1, n P(Bin(L, 1/|A|) >= x)); the per-canary maxima are independent
given the model, the prefixes and the sampling randomness, so their sum is stochastically at
most the sum of K independent variables with survival function min(1, n P(Bin(L,1/|A|) >= x)),
whose tail is computed by convolution.

Canary sets are drawn *distinct* (rejecting repeated draws). An event's probability under the
distinct law is at most its i.i.d. probability divided by P(all K draws distinct)
>= 1 - C(K,2) |A|^-length, and every p-value here carries that factor.

Numbers are computed in log10 so that bounds far below the smallest float stay meaningful;
the float p-value is rounded up (never down) and floored at the smallest positive float.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import gammaln, logsumexp

from harness.stats.ranks import holm_log10
from harness.stats.result import TestResult
from harness.stats.tails import LN10, ROUND_UP, Tail, binomial_tail

#: exact integer arithmetic up to this many Bernoulli trials, log-gamma arithmetic beyond
EXACT_TRIALS = 3000
#: extra log10 margin on the log-gamma path (relative 2.3e-6, far above its rounding error)
LGAMMA_MARGIN_LOG10 = 1e-6

INDEPENDENCE = (
    "under H0 each continuation is a function of the public prefix, the model and sampling "
    "randomness that does not depend on the secret suffix"
)
POSITIONWISE = (
    "matching is position-wise on units: unit j of the continuation is compared with unit j of "
    "the secret suffix only (a unit outside the alphabet can never match)"
)
IID_UNITS = (
    "the secret suffix units are drawn i.i.d. uniformly from the alphabet (pinned generator)"
)
DISTINCT = (
    "canaries were drawn distinct; p-values are divided by the lower bound "
    "1 - C(K,2)|A|^-length on the probability that K i.i.d. draws are distinct"
)


def _iv_counts(name: str, x: int, n: int) -> None:
    if not 0 <= x <= n:
        raise ValueError(f"{name} must be in [0, {n}], got {x}")


def _iv_alphabet(alphabet_size: int) -> None:
    if alphabet_size < 2:
        raise ValueError(f"alphabet_size must be >= 2, got {alphabet_size}")


def match_count_tail(x: int, trials: int, alphabet_size: int) -> Tail:
    """P(Binomial(trials, 1/|A|) >= x): exact integers up to EXACT_TRIALS, log-gamma beyond.

    Exact path: sum_{k>=x} C(n,k) (|A|-1)^(n-k) / |A|^n with Python integers, so the only
    rounding is the final log10 of two integers.
    """
    _iv_alphabet(alphabet_size)
    if trials < 0:
        raise ValueError(f"trials must be >= 0, got {trials}")
    _iv_counts("x", x, trials)
    if x == 0:
        return Tail(0.0)
    a, n = alphabet_size, trials
    if n <= EXACT_TRIALS:
        return binomial_tail(x, n, a)
    k = np.arange(x, n + 1, dtype=np.float64)
    log_terms = (
        gammaln(n + 1)
        - gammaln(k + 1)
        - gammaln(n - k + 1)
        + (n - k) * math.log(a - 1)
        - n * math.log(a)
    )
    # log-gamma of n ~ 1e6 carries ~1e-9 absolute error: add a margin far above it
    return Tail(min(0.0, float(logsumexp(log_terms)) / LN10 + LGAMMA_MARGIN_LOG10))


def exact_match_probability(length: int, alphabet_size: int) -> Tail:
    """P(all `length` units match) = |A|^-length."""
    _iv_alphabet(alphabet_size)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    return Tail(-length * math.log10(alphabet_size))


def union_bound(tail: Tail, attempts: int) -> Tail:
    """min(1, attempts * tail): P(any of `attempts` continuations reaches the event)."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    return Tail(min(0.0, tail.log10 + math.log10(attempts)))


def best_of_n_tail(x: int, length: int, alphabet_size: int, attempts: int) -> Tail:
    """Bound on P(max over `attempts` continuations of the matches >= x), union bound."""
    return union_bound(match_count_tail(x, length, alphabet_size), attempts)


def _log_dominating_pmf(length: int, alphabet_size: int, attempts: int) -> np.ndarray:
    """Natural-log pmf on 0..L of the law with survival S(x) = min(1, n P(Bin(L,1/|A|) >= x))."""
    log_s = [
        best_of_n_tail(x, length, alphabet_size, attempts).log10 * LN10 for x in range(length + 1)
    ]
    log_s.append(-math.inf)
    out = np.empty(length + 1)
    for x in range(length + 1):
        hi, lo = log_s[x], log_s[x + 1]
        if lo >= hi:  # S flat at 1 (the union bound saturates): no mass here
            out[x] = -math.inf
        else:
            out[x] = hi + (math.log1p(-math.exp(lo - hi)) if lo > -math.inf else 0.0)
    return out


def sum_of_best_tail(total: int, k: int, length: int, alphabet_size: int, attempts: int) -> Tail:
    """Bound on P(sum over K canaries of the best-of-n matches >= total).

    With attempts == 1 this is exactly P(Binomial(K L, 1/|A|) >= total). Otherwise the K-fold
    convolution of the dominating law, done in log space (all terms positive, no cancellation).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _iv_counts("total", total, k * length)
    if attempts == 1:
        return match_count_tail(total, k * length, alphabet_size)
    if total == 0:
        return Tail(0.0)
    if total == k * length:  # every unit of every canary: P(all D_i = L) = S(L)^K
        return Tail(k * best_of_n_tail(length, length, alphabet_size, attempts).log10)
    step = _log_dominating_pmf(length, alphabet_size, attempts)
    acc = _cap(step, total)
    for _ in range(k - 1):
        width = acc.size + length
        grid = np.full((length + 1, width), -np.inf)
        for x in range(length + 1):
            grid[x, x : x + acc.size] = acc + step[x]
        acc = _cap(logsumexp(grid, axis=0), total)
    return Tail(min(0.0, float(logsumexp(acc[total:])) / LN10))


def _cap(log_pmf: np.ndarray, total: int) -> np.ndarray:
    """Merge the mass at sums >= total into one bin: adding matches never leaves that region."""
    if log_pmf.size <= total + 1:
        return log_pmf
    return np.append(log_pmf[:total], logsumexp(log_pmf[total:]))


def distinct_factor_log10(k: int, canary_length: int, alphabet_size: int) -> float:
    """log10 of 1 / (1 - C(K,2)|A|^-length), the price of having drawn K distinct canaries.

    +inf when the lower bound on P(distinct) is not positive (then every p-value is 1).
    """
    pairs = math.comb(k, 2)
    if pairs == 0:
        return 0.0
    log_collide = math.log10(pairs) - canary_length * math.log10(alphabet_size)
    if log_collide >= 0:
        return math.inf
    return -math.log1p(-(10.0**log_collide)) / LN10 * (1 + ROUND_UP)


def count_matches(extracted: Sequence[object], truth: Sequence[object]) -> int:
    """Position-wise matches: #{j < len(truth) : extracted[j] == truth[j]}; missing units miss."""
    return sum(1 for e, t in zip(extracted, truth, strict=False) if e == t)


def _with_factor(t: Tail, factor_log10: float) -> Tail:
    return Tail(min(0.0, t.log10 + factor_log10))


def extraction_test(
    matches: Sequence[int],
    length: int,
    alphabet_size: int,
    canary_length: int,
    attempts: int = 1,
    name: str = "extraction-matches",
    iid_units: bool = True,
    non_iid_reason: str = "",
) -> TestResult:
    """Set-level test: total position-wise matches over K canaries, exact binomial bound.

    Args:
        matches: per canary, the matched units (the best over `attempts` continuations).
        length: L, secret units per canary.
        alphabet_size: |A|.
        canary_length: prefix + secret units (for the distinct-draw factor).
        attempts: continuations per canary the matches are the best of (1 = greedy only).
        iid_units: False when the generator is not i.i.d. uniform per unit (e.g. token
            canaries with a round-trip rejection rule); the result is then an estimate.
    """
    m = [int(v) for v in matches]
    if not m:
        raise ValueError("extraction_test needs at least one canary")
    for v in m:
        _iv_counts("matches", v, length)
    k, total = len(m), sum(m)
    factor = distinct_factor_log10(k, canary_length, alphabet_size)
    tail = _with_factor(sum_of_best_tail(total, k, length, alphabet_size, attempts), factor)
    floor = _with_factor(sum_of_best_tail(k * length, k, length, alphabet_size, attempts), factor)
    per = [_with_factor(best_of_n_tail(v, length, alphabet_size, attempts), factor) for v in m]
    if attempts == 1:
        method = f"exact binomial tail, P(Binomial(K L = {k * length}, 1/{alphabet_size}) >= total)"
    else:
        method = (
            f"union bound over {attempts} continuations per canary, min(1, n P(Bin(L,1/|A|) >= x)),"
            " convolved over the K canaries"
        )
    assumptions = (INDEPENDENCE, POSITIONWISE, IID_UNITS, DISTINCT)
    if not iid_units:
        method += f"; NOT a bound here: {non_iid_reason}"
    return TestResult(
        name=name,
        statistic=float(total),
        pvalue=tail.p,
        kind="bound" if iid_units else "estimate",
        method=method,
        k=k,
        m=0,
        min_attainable_p=floor.p,
        alternative="the continuations reproduce more secret units than chance allows",
        assumptions=assumptions,
        details={
            "matches": m,
            "length": length,
            "alphabet_size": alphabet_size,
            "canary_length": canary_length,
            "attempts": attempts,
            "total_matches": total,
            "expected_matches_under_h0": k * length / alphabet_size,
            "log10_p": tail.log10,
            "log10_min_attainable_p": floor.log10,
            "distinct_factor_log10": factor,
            "per_canary_p": [t.p for t in per],
            "per_canary_log10_p": [t.log10 for t in per],
            "per_canary_holm_log10_p": holm_log10([t.log10 for t in per]),
            "exact_matches": sum(1 for v in m if v == length),
        },
        log10_pvalue=tail.log10,
        log10_min_attainable_p=floor.log10,
    )


__all__ = [
    "Tail",
    "best_of_n_tail",
    "count_matches",
    "distinct_factor_log10",
    "exact_match_probability",
    "extraction_test",
    "match_count_tail",
    "sum_of_best_tail",
    "union_bound",
]
