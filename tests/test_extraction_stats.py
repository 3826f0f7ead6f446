"""Extraction bounds against scipy and brute-force enumeration / simulation."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binom

from harness.stats.extraction import (
    EXACT_TRIALS,
    best_of_n_tail,
    count_matches,
    distinct_factor_log10,
    exact_match_probability,
    extraction_test,
    match_count_tail,
    sum_of_best_tail,
    union_bound,
)


def brute_match_tail(x: int, length: int, a: int, guess: tuple[int, ...]) -> Fraction:
    """P(#matches >= x) by enumerating every secret suffix in A^L against a fixed continuation."""
    hits = sum(
        1
        for secret in itertools.product(range(a), repeat=length)
        if sum(s == g for s, g in zip(secret, guess, strict=True)) >= x
    )
    return Fraction(hits, a**length)


@pytest.mark.parametrize("a,length", [(2, 5), (3, 4), (5, 3), (7, 2)])
def test_match_tail_equals_enumeration(a: int, length: int) -> None:
    guess = tuple(i % a for i in range(length))
    for x in range(length + 1):
        exact = brute_match_tail(x, length, a, guess)
        got = match_count_tail(x, length, a)
        assert got.p >= float(exact)  # rounded up, never down
        assert got.p == pytest.approx(float(exact), rel=2e-9, abs=0)  # ROUND_UP = 1e-9


def test_continuation_outside_alphabet_only_lowers_the_tail() -> None:
    # a continuation unit that is not in A can never match: the binomial stays an upper bound
    a, length = 3, 4
    guess = (0, 99, 1, 99)
    for x in range(length + 1):
        assert float(brute_match_tail(x, length, a, guess)) <= match_count_tail(x, length, a).p


@pytest.mark.parametrize(
    "x,n,a",
    [(1, 10, 7776), (3, 10, 7776), (7, 40, 50), (2, 3000, 7776), (120, 1000, 20), (2600, 5000, 2)],
)
def test_match_tail_matches_scipy(x: int, n: int, a: int) -> None:
    got = match_count_tail(x, n, a)
    ref = binom.logsf(x - 1, n, 1 / a) / math.log(10)
    tol = 1e-9 if n <= EXACT_TRIALS else 2e-6  # the log-gamma path adds a 1e-6 log10 margin
    assert got.log10 == pytest.approx(ref, abs=tol)


def test_log_gamma_path_agrees_with_exact_path_and_stays_above() -> None:
    # just above EXACT_TRIALS the log-gamma path is used; compare with exact integers there
    n, a = EXACT_TRIALS + 1, 7776
    for x in (1, 2, 5, 12):
        approx = match_count_tail(x, n, a)
        num = sum(math.comb(n, k) * (a - 1) ** (n - k) for k in range(x, n + 1))
        exact_log10 = math.log10(num) - n * math.log10(a)
        assert approx.log10 >= exact_log10  # the margin keeps it conservative
        assert approx.log10 - exact_log10 < 1e-5


def test_tiny_bounds_keep_their_log_and_never_print_zero() -> None:
    t = match_count_tail(400, 400, 7776)
    assert t.log10 == pytest.approx(-400 * math.log10(7776))
    assert t.p > 0  # floored at the smallest float, which is still >= the true value


def test_exact_match_and_union_bound() -> None:
    assert exact_match_probability(3, 10).p == pytest.approx(1e-3, rel=1e-8)
    assert exact_match_probability(3, 10).p >= 1e-3
    assert union_bound(exact_match_probability(3, 10), 20).p == pytest.approx(0.02, rel=1e-8)
    assert union_bound(exact_match_probability(1, 2), 5).p == 1.0
    assert best_of_n_tail(2, 5, 7, 3).p == pytest.approx(
        min(1, 3 * binom.sf(1, 5, 1 / 7)), rel=3e-9
    )


def test_best_of_n_bound_holds_by_simulation() -> None:
    # n independent uniform continuations against a uniform secret: the union bound holds
    rng = np.random.default_rng(0)
    a, length, n, trials = 4, 6, 5, 20_000
    secret = rng.integers(0, a, size=(trials, 1, length))
    guesses = rng.integers(0, a, size=(trials, n, length))
    best = (secret == guesses).sum(-1).max(-1)
    for x in range(1, length + 1):
        emp = (best >= x).mean()
        se = math.sqrt(max(emp * (1 - emp), 1 / trials) / trials)
        assert emp <= best_of_n_tail(x, length, a, n).p + 4 * se


def test_sum_over_canaries_is_binomial_kl_for_greedy() -> None:
    for total in range(0, 13):
        got = sum_of_best_tail(total, 3, 4, 5, attempts=1)
        assert got.log10 == pytest.approx(
            binom.logsf(total - 1, 12, 1 / 5) / math.log(10), abs=1e-10
        )


def test_sum_of_best_equals_explicit_convolution_of_dominating_law() -> None:
    k, length, a, n = 3, 3, 4, 2
    surv = [min(1.0, n * binom.sf(x - 1, length, 1 / a)) for x in range(length + 1)] + [0.0]
    pmf = np.array([surv[x] - surv[x + 1] for x in range(length + 1)])
    conv = pmf
    for _ in range(k - 1):
        conv = np.convolve(conv, pmf)
    for total in range(k * length + 1):
        assert sum_of_best_tail(total, k, length, a, n).p == pytest.approx(
            conv[total:].sum(), rel=3e-9
        )


def test_sum_of_best_bound_holds_by_simulation() -> None:
    rng = np.random.default_rng(1)
    k, a, length, n, trials = 4, 3, 3, 3, 20_000
    secret = rng.integers(0, a, size=(trials, k, 1, length))
    guesses = rng.integers(0, a, size=(trials, k, n, length))
    total = (secret == guesses).sum(-1).max(-1).sum(-1)
    for s in range(0, k * length + 1, 2):
        emp = (total >= s).mean()
        se = math.sqrt(max(emp * (1 - emp), 1 / trials) / trials)
        assert emp <= sum_of_best_tail(s, k, length, a, n).p + 4 * se


def test_distinct_factor() -> None:
    assert distinct_factor_log10(1, 5, 10) == 0.0
    f = distinct_factor_log10(10, 3, 10)  # C(10,2) = 45 pairs, 1e-3 collision chance each
    assert 10**f == pytest.approx(1 / (1 - 0.045), rel=1e-8)
    assert distinct_factor_log10(100, 1, 10) == math.inf


def test_count_matches_is_positionwise() -> None:
    assert count_matches(["a", "b", "c"], ["a", "x", "c"]) == 2
    assert count_matches(["b", "c"], ["a", "b", "c"]) == 0  # a shift is not a match
    assert count_matches([], ["a"]) == 0
    assert count_matches([1, 2, 3, 4], [1, 2]) == 2


def test_extraction_test_result() -> None:
    r = extraction_test([5, 0, 2], length=5, alphabet_size=7776, canary_length=8)
    assert r.kind == "bound" and r.k == 3 and r.statistic == 7
    expected = binom.logsf(6, 15, 1 / 7776) / math.log(10) + distinct_factor_log10(3, 8, 7776)
    assert r.details["log10_p"] == pytest.approx(expected, abs=1e-9)
    assert r.pvalue >= 10 ** r.details["log10_p"]
    assert r.details["exact_matches"] == 1
    assert r.min_attainable_p <= r.pvalue
    assert r.details["per_canary_p"][1] == 1.0
    est = extraction_test([1], 5, 100, 8, iid_units=False, non_iid_reason="rejection rule")
    assert est.kind == "estimate" and "rejection rule" in est.method
    with pytest.raises(ValueError, match="matches must be in"):
        extraction_test([6], 5, 100, 8)
    with pytest.raises(ValueError, match="alphabet_size"):
        match_count_tail(1, 5, 1)
