"""The issue-3 statistics against brute-force enumeration and scipy on small cases."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from harness import stats as S


@pytest.mark.parametrize("sizes", [[3, 3], [4, 2, 5], [6, 6, 6, 6]])
def test_uniform_sum_cdf_matches_enumeration(sizes):
    sums = [sum(x) for x in itertools.product(*[range(1, n + 1) for n in sizes])]
    for t in range(len(sizes) - 1, sum(sizes) + 1):
        brute = sum(s <= t for s in sums) / len(sums)
        got = S.uniform_sum_cdf(t, sizes)
        assert brute <= got <= brute * (1 + 1e-8) + 1e-15


def test_uniform_rank_sum_test_ranks_and_pvalue():
    canaries = np.array([10.0, 0.5, 3.0])
    pools = np.array([1, 2, 3, 4, 0.1, 0.6, 0.7, 0.8, 3.0, 2.0, 1.0, 0.0])  # K=3 pools of M=4
    r = S.uniform_rank_sum_test(canaries, pools)
    assert r.details["canary_ranks"] == [1, 4, 2]  # tie at 3.0 counts against the claim
    sums = [sum(x) for x in itertools.product(range(1, 6), repeat=3)]
    assert r.pvalue == pytest.approx(sum(s <= 7 for s in sums) / 125, rel=1e-8)
    assert r.pvalue >= sum(s <= 7 for s in sums) / 125
    assert r.kind == "bound" and r.min_attainable_p == pytest.approx(5**-3)
    with pytest.raises(ValueError, match="multiple of K=3"):
        S.uniform_rank_sum_test(canaries, pools[:11])


def test_rank_first_count_matches_scipy_binomial():
    rng = np.random.default_rng(1)
    c = np.array([9.0, 9.0, -9.0, 9.0])
    z = rng.normal(size=4 * 7)
    r = S.rank_first_count_test(c, z)
    assert r.statistic == 3
    assert r.pvalue == pytest.approx(sps.binom.sf(2, 4, 1 / 8))
    assert S.rank_first_count_test(-np.abs(c), z).pvalue == 1.0


def test_poisson_binomial_against_enumeration():
    probs = [0.1, 0.5, 0.25, 0.9]
    for n in range(6):
        brute = sum(
            math.prod(p if b else 1 - p for p, b in zip(probs, bits, strict=False))
            for bits in itertools.product([0, 1], repeat=4)
            if sum(bits) >= n
        )
        assert S.poisson_binomial_sf(n, probs) == pytest.approx(brute, rel=1e-8)


def test_exposure_estimate_is_labelled_estimate_and_tracks_normal_tail():
    z = np.random.default_rng(4).normal(size=5000)
    r = S.exposure_estimate(3.0, z)
    assert r.kind == "estimate"
    assert r.statistic == pytest.approx(-math.log2(sps.norm.sf(3.0)), rel=0.15)


def _brute_tpr(m, n, x):
    best = 0.0
    for tau in list(m) + list(n) + [np.inf]:
        if np.mean(n >= tau) <= x:
            best = max(best, np.mean(m >= tau))
    return best


def test_mi_metrics_against_brute_force_and_scipy():
    rng = np.random.default_rng(5)
    m = np.round(rng.normal(1, 1, 40), 1)  # rounding makes ties
    n = np.round(rng.normal(0, 1, 60), 1)
    res = S.mi_metrics(m, n, fprs=(0.0, 0.05, 0.2), n_bootstrap=200)
    u = sps.mannwhitneyu(m, n, alternative="greater").statistic
    assert res.auc == pytest.approx(u / (40 * 60))
    for x in (0.0, 0.05, 0.2):
        assert res.tpr_at_fpr[x] == pytest.approx(_brute_tpr(m, n, x))
    assert res.fpr_at_full_tpr == pytest.approx(np.mean(n >= m.min()))
    lo, hi = res.ci["auc"]
    assert lo < res.auc < hi and res.kind == "estimate"


def test_dispatch_and_counterfactuals_needed():
    c, z = np.array([3.0, 2.0]), np.arange(10.0) / 10
    for name in S.STATISTICS:
        if name == "rank":
            continue
        r = S.run_statistic(name, c, z)
        assert r.name == name and 0 < r.pvalue <= 1
    assert S.counterfactuals_needed("uniform-rank-sum", 4, 10) == 40
    assert S.counterfactuals_needed("rank-sum", 4, 10) == 10
    with pytest.raises(ValueError, match="unknown statistic"):
        S.run_statistic("t-test", c, z)


def _nt(score, primary, name, kind="bound"):
    return SimpleNamespace(
        score=score, primary=primary, result=SimpleNamespace(name=name, kind=kind)
    )


def test_primary_must_be_the_plans():
    plan = {"task": "canary-rank", "score": "loss", "statistic": "rank-sum"}
    assert S.check_primary(plan, "canary-rank", [_nt("loss", True, "rank-sum"), _nt("zlib", False, "rank")])
    with pytest.raises(S.PlanViolation, match="pre-registers 'rank-sum' on 'loss'"):
        S.check_primary(plan, "canary-rank", [_nt("loss", True, "set-mean")])
    with pytest.raises(S.PlanViolation, match="pre-registers"):
        S.check_primary(plan, "canary-rank", [_nt("zlib", True, "rank-sum")])
    with pytest.raises(S.PlanViolation, match="2 primary"):
        S.check_primary(
            plan, "canary-rank", [_nt("loss", True, "rank-sum"), _nt("zlib", True, "rank-sum")]
        )
    # a statistic that takes no score function binds only the statistic
    ext = {"task": "extraction", "score": "loss", "statistic": "extraction-greedy"}
    assert S.check_primary(ext, "extraction", [_nt("greedy-matches", True, "extraction-greedy")])
    with pytest.raises(S.PlanViolation, match="pre-registers 'extraction-greedy'"):
        S.check_primary(ext, "extraction", [_nt("best", True, "extraction-best-of-n")])
    # another task than the plan's is not governed by it: an additional analysis
    assert not S.check_primary(plan, "extraction", [_nt("greedy-matches", True, "extraction-greedy")])
