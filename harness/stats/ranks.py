"""Rank tests of K canaries against counterfactuals (one shared pool, or one per canary): exact.

All tests take scores oriented "larger = more member-like" and count ties against the claim,
so a reported bound stays valid when scores tie (see shared STATISTICS.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.stats.result import EXCHANGEABILITY, SAME_PATH, TIES, TestResult, _iv_scores
from harness.stats.tails import (
    Tail,
    _uniform_sum_float,
    binomial_tail,
    log10_ratio,
    rank_sum_tail,
    uniform_sum_tail,
)


def rank_against(canary: float, counterfactuals: np.ndarray) -> int:
    """rank = 1 + #{j : s(z_j) >= s(c)}: 1 is best; ties count against the claim."""
    return 1 + int(np.count_nonzero(counterfactuals >= canary))


def rank_test(canary_score: float, counterfactual_scores: Sequence[float]) -> TestResult:
    """Single-canary rank test: p = rank / (M + 1), exact under exchangeability."""
    z = _iv_scores("counterfactual_scores", counterfactual_scores)
    c = float(_iv_scores("canary_score", [canary_score])[0])
    m = z.size
    rank = rank_against(c, z)
    return TestResult(
        name="rank",
        statistic=float(rank),
        pvalue=rank / (m + 1),
        kind="bound",
        method="exact rank test, p = rank/(M+1)",
        k=1,
        m=m,
        min_attainable_p=1 / (m + 1),
        assumptions=(EXCHANGEABILITY, SAME_PATH, TIES),
        details={"rank": rank, "exposure_bits": exposure(rank, m)},
    )


def pooled_ranks(canary_scores: np.ndarray, counterfactual_scores: np.ndarray) -> np.ndarray:
    """Ranks (1 = most member-like) of the canaries among all K+M items.

    A canary tied with counterfactuals is placed below all of them (against the claim);
    ties among canaries do not change their rank sum.
    """
    z_sorted = np.sort(counterfactual_scores)
    # counterfactuals scoring >= this canary
    z_ge = z_sorted.size - np.searchsorted(z_sorted, canary_scores, side="left")
    # canaries strictly ahead of this one (ties among canaries broken by position)
    order = np.argsort(-canary_scores, kind="stable")
    ahead = np.empty(canary_scores.size, dtype=np.int64)
    ahead[order] = np.arange(canary_scores.size)
    return (1 + z_ge + ahead).astype(np.int64)


def rank_sum_test(
    canary_scores: Sequence[float], counterfactual_scores: Sequence[float]
) -> TestResult:
    """K canaries against one shared pool: Wilcoxon rank-sum of the canaries' pooled ranks.

    Under H0 the canaries' ranks are a uniform random K-subset of {1..K+M}; small sums are
    evidence. The tail is counted exactly (Gaussian binomial coefficients in integers) where the
    budget allows, else bounded by the smaller of Serfling's and a Chernoff inequality: a
    deterministic bound at every alpha, never a Monte-Carlo estimate.
    """
    c = _iv_scores("canary_scores", canary_scores)
    z = _iv_scores("counterfactual_scores", counterfactual_scores)
    k, m = c.size, z.size
    n = k + m
    ranks = pooled_ranks(c, z)
    t = int(ranks.sum())
    tail = rank_sum_tail(t, k, n)
    floor = Tail(log10_ratio(1, math.comb(n, k)))
    if tail.method == "exact":
        how = "exact null distribution of the rank sum (subsets counted in integers)"
    else:
        how = (
            f"conservative {tail.method} bound on the rank-sum tail (exact counting exceeded its "
            "budget); deterministic, valid at every alpha"
        )
    return TestResult(
        name="rank-sum",
        statistic=float(t),
        pvalue=tail.p,
        kind="bound",
        method=how,
        k=k,
        m=m,
        min_attainable_p=floor.p,
        assumptions=(EXCHANGEABILITY, SAME_PATH, TIES),
        details={
            "canary_ranks": ranks.tolist(),
            "min_rank_sum": k * (k + 1) // 2,
            "expected_rank_sum_under_h0": k * (n + 1) / 2,
            "tail_method": tail.method,
        },
        log10_pvalue=tail.log10,
        log10_min_attainable_p=floor.log10,
    )


def exposure(rank: int, m: int) -> float:
    """Exact exposure in bits, log2(M+1) - log2(rank) (Carlini et al., The Secret Sharer)."""
    if not 1 <= rank <= m + 1:
        raise ValueError(f"rank must be in [1, M+1], got {rank} for M={m}")
    return math.log2(m + 1) - math.log2(rank)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise error control, any dependence)."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    adj = np.empty_like(p)
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (p.size - j) * p[i]))
        adj[i] = running
    return adj.tolist()


def holm_log10(log10_pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values in log10 (for p-values far below the float range)."""
    lp = np.asarray(log10_pvalues, dtype=np.float64)
    order = np.argsort(lp, kind="stable")
    adj = np.empty_like(lp)
    running = -math.inf
    for j, i in enumerate(order):
        running = max(running, min(0.0, math.log10(lp.size - j) + lp[i]))
        adj[i] = running
    return adj.tolist()


# --- K canaries, separate counterfactual pools ------------------------------------------------


def split_pools(counterfactual_scores: np.ndarray, k: int) -> list[np.ndarray]:
    """Cut the counterfactuals into K consecutive, equal pools (pool i belongs to canary i).

    The pool of an item is fixed by its draw order, which is independent of the scores, so the
    split keeps every canary exchangeable with its own pool.
    """
    if counterfactual_scores.size < k or counterfactual_scores.size % k:
        raise ValueError(
            f"separate pools need a multiple of K={k} counterfactuals (M per canary), "
            f"got {counterfactual_scores.size}"
        )
    return list(counterfactual_scores.reshape(k, -1))


def uniform_sum_cdf(t: int, sizes: Sequence[int]) -> float:
    """P(R_1 + ... + R_K <= t) for independent R_i uniform on {1..n_i} (float, rounded up)."""
    if len(set(sizes)) == 1:
        return uniform_sum_tail(t, len(sizes), sizes[0]).p
    return _uniform_sum_float(sizes, t).p


def _per_pool_ranks(
    canary_scores: Sequence[float], counterfactual_scores: Sequence[float]
) -> tuple[list[int], int]:
    """Each canary's rank in its own pool of M (pool i = the i-th block of M in draw order)."""
    c = _iv_scores("canary_scores", canary_scores)
    z = _iv_scores("counterfactual_scores", counterfactual_scores)
    pools = split_pools(z, c.size)
    return [rank_against(float(ci), pi) for ci, pi in zip(c, pools, strict=True)], pools[0].size


def _per_pool_result(
    name: str, statistic: float, tail: Tail, method: str, ranks: list[int], m: int,
    details: dict[str, Any],
) -> TestResult:
    """The TestResult of a per-canary-pool test: K ranks each uniform on {1..M+1} under H0."""
    floor = Tail(-len(ranks) * math.log10(m + 1))
    return TestResult(
        name=name,
        statistic=statistic,
        pvalue=tail.p,
        kind="bound",
        method=method,
        k=len(ranks),
        m=m,
        min_attainable_p=floor.p,
        assumptions=(
            EXCHANGEABILITY,
            "each canary has its own disjoint pool of M counterfactuals",
            SAME_PATH,
            TIES,
        ),
        details={"canary_ranks": ranks, "pool_size": m, **details},
        log10_pvalue=tail.log10,
        log10_min_attainable_p=floor.log10,
    )


def uniform_rank_sum_test(
    canary_scores: Sequence[float], counterfactual_scores: Sequence[float]
) -> TestResult:
    """K canaries, each ranked in its own pool of M counterfactuals; statistic = sum of ranks.

    Under H0 rank_i is uniform on {1..M+1} (stochastically larger with ties) and the K ranks are
    independent (disjoint pools), so P(sum <= t) is the exact tail (inclusion-exclusion).
    """
    ranks, m = _per_pool_ranks(canary_scores, counterfactual_scores)
    t = int(sum(ranks))
    tail = uniform_sum_tail(t, len(ranks), m + 1)
    method = "exact tail of a sum of independent discrete-uniform ranks (inclusion-exclusion)"
    details = {"expected_sum_under_h0": len(ranks) * (m + 2) / 2, "tail_method": tail.method}
    return _per_pool_result("uniform-rank-sum", float(t), tail, method, ranks, m, details)


def poisson_binomial_sf(n: int, probs: Sequence[float]) -> float:
    """P(sum of independent Bernoulli(p_i) >= n), exactly by dynamic programming."""
    dist = np.zeros(len(probs) + 1)
    dist[0] = 1.0
    for q in probs:
        dist[1:] = dist[1:] * (1 - q) + dist[:-1] * q
        dist[0] *= 1 - q
    return min(1.0, float(dist[n:].sum()) * (1 + 1e-9))


def rank_first_count_test(
    canary_scores: Sequence[float], counterfactual_scores: Sequence[float]
) -> TestResult:
    """Number of canaries ranked first in their own pool; under H0 at most Binomial(K, 1/(M+1))."""
    ranks, m = _per_pool_ranks(canary_scores, counterfactual_scores)
    firsts = sum(r == 1 for r in ranks)
    tail = binomial_tail(firsts, len(ranks), m + 1)
    method = "exact binomial tail, #canaries ranked first ~ Binomial(K, 1/(M+1)) under H0"
    return _per_pool_result("rank-first-count", float(firsts), tail, method, ranks, m, {})


