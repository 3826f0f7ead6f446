"""Exact tests against brute-force enumeration and scipy; null validity by simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.stats import (
    exposure,
    holm,
    pooled_ranks,
    rank_sum_tail,
    rank_sum_test,
    rank_test,
    run_statistic,
)


def brute_rank_sum_cdf(t: int, k: int, n: int) -> float:
    subsets = list(itertools.combinations(range(1, n + 1), k))
    return sum(sum(s) <= t for s in subsets) / len(subsets)


@pytest.mark.parametrize("k,n", [(1, 5), (2, 6), (3, 9), (4, 10), (5, 12)])
def test_rank_sum_cdf_matches_enumeration(k, n):
    smin, smax = k * (k + 1) // 2, k * (2 * n - k + 1) // 2
    for t in range(smin - 1, smax + 1):
        exact = rank_sum_tail(t, k, n).p if t >= smin else 0.0
        brute = brute_rank_sum_cdf(t, k, n)
        assert exact >= brute  # conservative rounding
        assert exact == pytest.approx(brute, rel=2e-9, abs=1e-15)  # ROUND_UP = 1e-9


def test_rank_sum_test_matches_scipy_mannwhitneyu_exact():
    rng = np.random.default_rng(3)
    for _ in range(20):
        c = rng.normal(0.7, 1, size=5)
        z = rng.normal(0, 1, size=14)
        ours = rank_sum_test(c, z).pvalue
        ref = sps.mannwhitneyu(c, z, alternative="greater", method="exact").pvalue
        assert ours == pytest.approx(ref, rel=2e-9)


def test_rank_test_single_canary():
    z = np.arange(10, dtype=float)  # 0..9
    r = rank_test(9.5, z)
    assert r.statistic == 1 and r.pvalue == pytest.approx(1 / 11) and r.kind == "bound"
    assert r.min_attainable_p == pytest.approx(1 / 11)
    assert rank_test(-1.0, z).pvalue == pytest.approx(1.0)
    # a tie counts against the claim
    assert rank_test(9.0, z).statistic == 2


def test_rank_sum_with_k1_equals_rank_test():
    rng = np.random.default_rng(0)
    z = rng.normal(size=99)
    for c in (-3.0, 0.0, 1.5, 5.0):
        assert rank_sum_test([c], z).pvalue == pytest.approx(rank_test(c, z).pvalue, rel=2e-9)


def test_ties_count_against_the_claim():
    c = np.array([1.0, 1.0])
    z = np.array([1.0, 1.0, 0.0])
    ranks = pooled_ranks(c, z)
    assert sorted(ranks.tolist()) == [3, 4]  # both tied counterfactuals placed ahead
    p_tied = rank_sum_test(c, z).pvalue
    p_broken_for = rank_sum_test(c + 1e-9, z).pvalue
    assert p_tied >= p_broken_for


def test_all_canaries_on_top_gives_min_attainable_p():
    r = rank_sum_test(np.full(4, 10.0) + np.arange(4), np.zeros(20) + np.arange(20) * 0.01)
    assert r.pvalue == pytest.approx(1 / math.comb(24, 4), rel=1e-9)
    assert r.pvalue == pytest.approx(r.min_attainable_p, rel=1e-9)


def test_beyond_the_counting_budget_the_bound_is_deterministic_and_conservative(monkeypatch):
    """Past the exact budget: Serfling/Chernoff, the same p on every call, never below exact."""
    import harness.stats.tails as tails

    rng = np.random.default_rng(1)
    c, z = rng.normal(0.3, 1, 6), rng.normal(0, 1, 40)
    exact = rank_sum_test(c, z)
    monkeypatch.setattr(tails, "RANK_SUM_BUDGET", 0)
    bound = rank_sum_test(c, z)
    assert bound.details["tail_method"] in ("Serfling", "Chernoff")
    assert bound.pvalue >= exact.pvalue and bound.pvalue == rank_sum_test(c, z).pvalue
    for n in range(2, 11):  # every (k, t) of small n: the inequality holds against enumeration
        for k in range(1, n):
            for t in range(k * (k + 1) // 2, k * (2 * n - k + 1) // 2 + 1):
                assert rank_sum_tail(t, k, n).p >= brute_rank_sum_cdf(t, k, n) * (1 - 1e-12)


def test_tails_far_below_the_smallest_float_are_kept_in_log10():
    """K = 400 canaries all ranked first: p = 1/C(10400, 400) ~ 1e-735, never printed as 0."""
    k, m = 400, 10_000
    r = rank_sum_test(np.arange(k) + 1e6, np.arange(m, dtype=float))
    assert r.pvalue > 0 and r.log10_pvalue == pytest.approx(-math.log10(math.comb(k + m, k)), rel=1e-12)
    assert r.log10_pvalue < -700 and r.details["tail_method"] == "exact"
    for stat in ("uniform-rank-sum", "rank-first-count"):
        u = run_statistic(stat, np.full(150, 1e6), np.zeros(150 * 200))
        assert u.pvalue > 0 and u.log10_pvalue == pytest.approx(-150 * math.log10(201), rel=1e-12)


@pytest.mark.parametrize("statistic", ["rank-sum", "rank"])
def test_null_rejection_rate_is_at_most_alpha(statistic):
    """Scores independent of membership: rejection rate <= alpha within binomial error."""
    rng = np.random.default_rng(123)
    k = 4 if statistic == "rank-sum" else 1
    m, trials = 50, 2000
    # discrete scores create ties, the hardest case for validity
    pvals = np.array(
        [
            run_statistic(statistic, rng.integers(0, 20, k).astype(float), rng.integers(0, 20, m).astype(float)).pvalue
            for _ in range(trials)
        ]
    )
    for alpha in (0.01, 0.05, 0.1):
        upper = sps.binom.ppf(0.999, trials, alpha) / trials
        assert np.mean(pvals <= alpha) <= upper, (alpha, np.mean(pvals <= alpha))
    # and with continuous scores the law is uniform, not just conservative
    cont = np.array([run_statistic(statistic, rng.normal(size=k), rng.normal(size=m)).pvalue for _ in range(trials)])
    assert sps.kstest(cont, "uniform").pvalue > 1e-4


def test_exposure_and_holm():
    assert exposure(1, 1023) == pytest.approx(10.0)
    assert exposure(1024, 1023) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        exposure(0, 10)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([]) == []


def test_bad_input_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="NaN"):
        rank_sum_test([np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 1"):
        rank_test(0.0, [])
    with pytest.raises(ValueError, match="unknown statistic"):
        run_statistic("t-test", np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="single canary"):
        run_statistic("rank", np.ones(2), np.ones(3))
