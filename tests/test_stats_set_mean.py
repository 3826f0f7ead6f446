"""Set-level mean test (MembershipTracker) against brute force, and its null validity."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness.stats import run_statistic, set_mean_test


def brute_users_p(user: np.ndarray, out: np.ndarray) -> float:
    obs = math.fsum(user) / len(user)
    ge = sum(math.fsum(row) / len(row) >= obs for row in out)
    return (1 + ge) / (len(out) + 1)


def brute_permutation_p(user: np.ndarray, out: np.ndarray) -> float:
    pooled = list(user) + list(out.ravel())
    k = len(user)
    obs = math.fsum(user) / k
    subsets = list(itertools.combinations(pooled, k))
    return sum(math.fsum(s) / k >= obs for s in subsets) / len(subsets)


@pytest.mark.parametrize("k,n_out", [(1, 5), (2, 4), (3, 3), (4, 2)])
def test_set_mean_matches_brute_force(k, n_out):
    rng = np.random.default_rng(k * 10 + n_out)
    for _ in range(15):
        user = rng.normal(0.5, 1, k)
        out = rng.normal(0, 1, (n_out, k))
        r = set_mean_test(user, out)
        assert r.pvalue == pytest.approx(brute_users_p(user, out), abs=1e-15)
        assert r.kind == "bound" and r.k == k and r.m == n_out
        assert r.min_attainable_p == 1 / (n_out + 1)
        rp = set_mean_test(user, out, method="permutation", n_resamples=10**6)
        assert rp.pvalue == pytest.approx(brute_permutation_p(user, out), abs=1e-15)
        assert rp.details["subsets"] == math.comb(k * (n_out + 1), k)


def test_ties_count_against_the_claim():
    user = np.array([1.0, 2.0, 3.0])
    out = np.array([[3.0, 2.0, 1.0], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0]])  # two sets tie the mean
    assert set_mean_test(user, out).pvalue == 3 / 4
    # a set equal up to float rounding of the mean also counts as a tie
    user = np.array([0.1, 0.2, 0.3])
    out = np.array([[0.3, 0.1, 0.2 + 1e-17]])
    assert set_mean_test(user, out).pvalue == 1.0
    same = np.full((4, 2), 5.0)
    assert set_mean_test([5.0, 5.0], same, method="permutation").pvalue == 1.0


def test_monte_carlo_permutation_agrees_with_exact():
    rng = np.random.default_rng(7)
    user, out = rng.normal(0.8, 1, 4), rng.normal(0, 1, (4, 4))  # C(20, 4) = 4845 subsets
    exact = set_mean_test(user, out, method="permutation", n_resamples=10_000).pvalue
    mc = set_mean_test(user, out, method="permutation", n_resamples=4000, seed=3)
    assert "Monte-Carlo" in mc.method
    assert abs(mc.pvalue - exact) < 4 * math.sqrt(exact * (1 - exact) / 4000) + 1e-3
    assert mc.min_attainable_p == 1 / 4001


@pytest.mark.parametrize("method", ["users", "permutation"])
def test_null_p_values_are_uniform(method):
    """Under H0 (all marks i.i.d.) P(p <= a) <= a, and equals a at attainable levels."""
    rng = np.random.default_rng(11)
    n_out, k, reps = 19, 3, 4000
    ps = np.array(
        [
            set_mean_test(
                rng.normal(size=k),
                rng.normal(size=(n_out, k)),
                method=method,
                n_resamples=199,
                seed=i,
            ).pvalue
            for i in range(reps)
        ]
    )
    for a in (0.05, 0.1, 0.25, 0.5):
        rate = float(np.mean(ps <= a + 1e-12))
        assert rate <= a + 3.3 * math.sqrt(a * (1 - a) / reps)  # 99.95% one-sided
        assert rate >= a - 3.3 * math.sqrt(a * (1 - a) / reps) - 1 / 20  # granularity of p


def test_users_test_is_valid_with_dependent_marks_within_a_user():
    """One phrase repeated K times per user: users stay exchangeable, items do not."""
    rng = np.random.default_rng(5)
    ps = []
    for _ in range(3000):
        per_user = rng.normal(size=20)  # user effect dominates, items nearly identical
        sets = per_user[:, None] + 0.01 * rng.normal(size=(20, 4))
        ps.append(set_mean_test(sets[0], sets[1:]).pvalue)
    assert np.mean(np.array(ps) <= 0.05 + 1e-12) <= 0.05 + 3.3 * math.sqrt(0.05 * 0.95 / 3000)


def test_run_statistic_dispatches_set_mean_by_consecutive_users():
    rng = np.random.default_rng(2)
    user, out = rng.normal(size=3), rng.normal(size=(6, 3))
    via = run_statistic("set-mean", user, out.ravel())
    assert via == set_mean_test(user, out)
    with pytest.raises(ValueError, match="whole users"):
        run_statistic("set-mean", user, out.ravel()[:-1])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        set_mean_test([1.0, 2.0], [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="NaN"):
        set_mean_test([1.0], [[float("nan")]])
    with pytest.raises(ValueError, match="method"):
        set_mean_test([1.0], [[0.0]], method="t-test")
