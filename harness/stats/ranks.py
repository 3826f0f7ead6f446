"""Rank tests of K canaries against counterfactuals (shared pool or one pool per canary): exact bounds.

All tests take scores oriented "larger = more member-like" and count ties against the claim,
so a reported bound stays valid when scores tie (see shared STATISTICS.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from harness.stats.result import (
    EXACT_BUDGET,
    EXCHANGEABILITY,
    FLOAT_ROUND_UP,
    SAME_PATH,
    TIES,
    TestResult,
    _iv_scores,
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


def rank_sum_cdf_exact(t: int, k: int, n: int) -> float:
    """P(sum of a uniform random k-subset of {1..n} <= t), by dynamic programming.

    Counts are kept in float64 (exact up to 2^53, relative error ~1e-16 per addition beyond);
    the result is rounded up by FLOAT_ROUND_UP relative so it stays conservative.
    """
    smin, smax = k * (k + 1) // 2, k * (2 * n - k + 1) // 2
    if t < smin:
        return 0.0
    if t >= smax:
        return 1.0
    f = np.zeros((k + 1, t + 1))
    f[0, 0] = 1.0
    for i in range(1, min(n, t) + 1):
        kmax = min(i, k)
        f[1 : kmax + 1, i:] += f[0:kmax, : t + 1 - i].copy()
    count = f[k].sum()
    return min(1.0, count / math.comb(n, k) * (1 + FLOAT_ROUND_UP))


def exact_feasible(t: int, k: int, n: int) -> bool:
    """Whether the exact DP fits the time budget and float64 range."""
    return (k + 1) * (t + 1) * min(n, t) <= EXACT_BUDGET and math.comb(n, k) < 1e300


def rank_sum_test(
    canary_scores: Sequence[float],
    counterfactual_scores: Sequence[float],
    method: Literal["auto", "exact", "permutation"] = "auto",
    n_resamples: int = 100_000,
    seed: int = 0,
) -> TestResult:
    """K canaries against one shared pool: Wilcoxon rank-sum of the canaries' pooled ranks.

    Under H0 the canaries' ranks are a uniform random K-subset of {1..K+M}; small sums are
    evidence. Exact by counting where feasible, else a Monte-Carlo permutation p-value
    (1 + #{T_b <= t}) / (B + 1), itself a valid bound.
    """
    c = _iv_scores("canary_scores", canary_scores)
    z = _iv_scores("counterfactual_scores", counterfactual_scores)
    k, m = c.size, z.size
    n = k + m
    ranks = pooled_ranks(c, z)
    t = int(ranks.sum())
    smin = k * (k + 1) // 2
    use_exact = method == "exact" or (method == "auto" and exact_feasible(t, k, n))
    if use_exact:
        p = rank_sum_cdf_exact(t, k, n)
        how = "exact null distribution of the rank sum (dynamic programming over subsets)"
        min_p = 1 / math.comb(n, k)
        extra: dict[str, Any] = {}
    elif method in ("auto", "permutation"):
        rng = np.random.default_rng(seed)
        hits = 0
        for _ in range(n_resamples):
            hits += int(rng.choice(n, size=k, replace=False).sum() + k <= t)
        p = (1 + hits) / (n_resamples + 1)
        how = f"Monte-Carlo permutation p-value, (1 + #{{T_b <= t}})/(B+1), B={n_resamples}"
        min_p = 1 / (n_resamples + 1)
        extra = {"n_resamples": n_resamples, "seed": seed}
    else:
        raise ValueError(f"method must be 'auto', 'exact' or 'permutation', got {method!r}")
    return TestResult(
        name="rank-sum",
        statistic=float(t),
        pvalue=float(p),
        kind="bound",
        method=how,
        k=k,
        m=m,
        min_attainable_p=float(min_p),
        assumptions=(EXCHANGEABILITY, SAME_PATH, TIES),
        details={
            "canary_ranks": ranks.tolist(),
            "min_rank_sum": smin,
            "expected_rank_sum_under_h0": k * (n + 1) / 2,
            **extra,
        },
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
    """P(R_1 + ... + R_K <= t) for independent R_i uniform on {1..n_i}, by convolution.

    Probabilities are convolved in float64 (all terms positive, relative error below
    1e-13 for any K*n this harness uses) and rounded up by 1e-9 relative to stay conservative.
    """
    lo = len(sizes)
    if t < lo:
        return 0.0
    if t >= sum(sizes):
        return 1.0
    pmf = np.ones(1)  # distribution of sum - (number of terms so far), truncated at t - K
    cap = t - lo + 1
    for n in sizes:
        pmf = np.convolve(pmf, np.full(n, 1.0 / n))[:cap]
    return min(1.0, float(pmf.sum()) * (1 + 1e-9))


def uniform_rank_sum_test(
    canary_scores: Sequence[float], counterfactual_scores: Sequence[float]
) -> TestResult:
    """K canaries, each ranked in its own pool of M counterfactuals; statistic = sum of ranks.

    Under H0 rank_i is uniform on {1..M+1} (stochastically larger with ties) and the K ranks are
    independent (disjoint pools), so P(sum <= t) is the exact convolution tail.
    """
    c = _iv_scores("canary_scores", canary_scores)
    z = _iv_scores("counterfactual_scores", counterfactual_scores)
    pools = split_pools(z, c.size)
    ranks = [rank_against(float(ci), pi) for ci, pi in zip(c, pools, strict=True)]
    m = pools[0].size
    t = int(sum(ranks))
    sizes = [m + 1] * c.size
    return TestResult(
        name="uniform-rank-sum",
        statistic=float(t),
        pvalue=uniform_sum_cdf(t, sizes),
        kind="bound",
        method="exact tail of a sum of independent discrete-uniform ranks (convolution)",
        k=c.size,
        m=m,
        min_attainable_p=float((m + 1) ** -c.size),
        assumptions=(
            EXCHANGEABILITY,
            "each canary has its own disjoint pool of M counterfactuals",
            SAME_PATH,
            TIES,
        ),
        details={
            "canary_ranks": ranks,
            "pool_size": m,
            "expected_sum_under_h0": c.size * (m + 2) / 2,
        },
    )


def poisson_binomial_sf(n: int, probs: Sequence[float]) -> float:
    """P(sum of independent Bernoulli(p_i) >= n), exactly by dynamic programming."""
    dist = np.zeros(len(probs) + 1)
    dist[0] = 1.0
    for q in probs:
        dist[1:] = dist[1:] * (1 - q) + dist[:-1] * q
        dist[0] *= 1 - q
    return min(1.0, float(dist[n:].sum()) * (1 + 1e-9))


def binomial_tail_exact(x: int, n: int, q: int) -> float:
    """P(Binomial(n, 1/q) >= x), counted in integers and rounded up by FLOAT_ROUND_UP relative."""
    if x <= 0:
        return 1.0
    num = sum(math.comb(n, j) * (q - 1) ** (n - j) for j in range(x, n + 1))
    return min(1.0, num / q**n * (1 + FLOAT_ROUND_UP))


def rank_first_count_test(
    canary_scores: Sequence[float], counterfactual_scores: Sequence[float]
) -> TestResult:
    """Number of canaries ranked first in their own pool; under H0 at most Binomial(K, 1/(M+1))."""
    c = _iv_scores("canary_scores", canary_scores)
    z = _iv_scores("counterfactual_scores", counterfactual_scores)
    pools = split_pools(z, c.size)
    ranks = [rank_against(float(ci), pi) for ci, pi in zip(c, pools, strict=True)]
    m = pools[0].size
    firsts = sum(r == 1 for r in ranks)
    p = binomial_tail_exact(firsts, c.size, m + 1)
    return TestResult(
        name="rank-first-count",
        statistic=float(firsts),
        pvalue=min(1.0, p),
        kind="bound",
        method="exact binomial tail, #canaries ranked first ~ Binomial(K, 1/(M+1)) under H0",
        k=c.size,
        m=m,
        min_attainable_p=float((m + 1) ** -c.size),
        assumptions=(
            EXCHANGEABILITY,
            "each canary has its own disjoint pool of M counterfactuals",
            SAME_PATH,
            TIES,
        ),
        details={"canary_ranks": ranks, "pool_size": m},
    )
