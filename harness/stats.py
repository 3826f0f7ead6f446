"""Statistical tests on score arrays, each returning a typed result labelled bound or estimate.

All tests take scores oriented "larger = more member-like" and count ties against the claim,
so a reported bound stays valid when scores tie (see shared STATISTICS.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Kind = Literal["bound", "estimate"]

EXCHANGEABILITY = (
    "canaries and counterfactuals are i.i.d. draws from one generator (distinct draws, i.e. "
    "sampling without replacement), independent of the model under H0, hence exchangeable"
)
SAME_PATH = "canaries and counterfactuals were scored through the identical backend call path"
TIES = "ties are counted against the claim, which can only make p larger"

#: exact enumeration budget: DP cells times items, and the largest count float64 holds safely
EXACT_BUDGET = 4_000_000_000
FLOAT_ROUND_UP = 1e-12


@dataclass(frozen=True)
class TestResult:
    """One test's outcome; `pvalue` is an exact/conservative bound only if kind == 'bound'."""

    name: str
    statistic: float
    pvalue: float
    kind: Kind
    method: str
    k: int
    m: int
    min_attainable_p: float
    alternative: str = "canaries score higher (more member-like) than counterfactuals"
    assumptions: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    __test__ = False  # not a pytest class

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["assumptions"] = list(self.assumptions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TestResult:
        d = dict(d)
        d["assumptions"] = tuple(d.get("assumptions", ()))
        return cls(**d)


def _iv_scores(name: str, x: Sequence[float] | np.ndarray, min_len: int = 1) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size < min_len:
        raise ValueError(f"{name} needs at least {min_len} value(s), got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite scores")
    return a


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


#: statistic name -> test applied to (canary scores, counterfactual scores)
def run_statistic(name: str, canary: np.ndarray, counterfactual: np.ndarray) -> TestResult:
    """Dispatch a plan's statistic by name."""
    if name == "rank-sum":
        return rank_sum_test(canary, counterfactual)
    if name == "rank":
        if len(canary) != 1:
            raise ValueError("statistic 'rank' is for a single canary; use 'rank-sum' for K > 1")
        return rank_test(float(canary[0]), counterfactual)
    if name == "set-mean":  # counterfactuals are out-world users' marks, K consecutive per user
        if len(counterfactual) % len(canary):
            raise ValueError("set-mean needs the counterfactual marks in whole users of K marks")
        return set_mean_test(canary, np.reshape(counterfactual, (-1, len(canary))))
    raise ValueError(f"unknown statistic {name!r}; known: 'rank-sum', 'rank', 'set-mean'")


SET_EXCHANGEABILITY = (
    "the user's K marks and every out-world user's K marks are drawn the same way from one "
    "generator with fresh randomness, independent of the model under H0, so the N+1 users' "
    "mark sets are exchangeable"
)
ITEM_EXCHANGEABILITY = (
    "all marks (the user's and the out-world users') are i.i.d. draws from one generator, so "
    "every item is exchangeable with every other (needs one mark per item; not valid for a "
    "phrase repeated within a user)"
)
#: relative slack when comparing floating means: a near-tie counts against the claim
MEAN_TIE_RTOL = 1e-12


def _set_means(sets: np.ndarray) -> np.ndarray:
    # sort each row first so that equal multisets give bit-identical means (ties are exact)
    return np.sort(sets, axis=-1).mean(axis=-1)


def _at_least(values: np.ndarray, observed: float) -> np.ndarray:
    """values >= observed, with a tiny slack so rounding can never break a tie in our favour."""
    return values >= observed - MEAN_TIE_RTOL * max(1.0, abs(observed))


def set_mean_test(
    user_scores: Sequence[float] | np.ndarray,
    out_world_scores: Sequence[Sequence[float]] | np.ndarray,
    method: Literal["users", "permutation"] = "users",
    n_resamples: int = 100_000,
    seed: int = 0,
) -> TestResult:
    """Set-level mean test (MembershipTracker): does the user's marked set score unusually high?

    Statistic: the mean score of the user's K marked items. `out_world_scores` is an (N, K)
    array: N out-world users whose items were marked the same way but never published.

    - method="users": p = (1 + #{out-world users with mean >= the user's}) / (N + 1), exact
      under exchangeability of the N+1 users' mark sets (marks within a user may be
      dependent, e.g. one phrase repeated in K documents).
    - method="permutation": the user's set against random K-subsets of all (N+1)K pooled
      items; exact enumeration when C(n, K) <= n_resamples, else the Monte-Carlo p-value
      (1 + #{mean_b >= observed}) / (B + 1). Needs i.i.d. items; finer resolution than "users".
    """
    c = _iv_scores("user_scores", user_scores)
    z = np.asarray(out_world_scores, dtype=np.float64)
    k = c.size
    if z.ndim != 2 or z.shape[1] != k:
        raise ValueError(
            f"out_world_scores must be an (N, K) array with K = {k} marks per user, got shape {z.shape}"
        )
    _iv_scores("out_world_scores", z.ravel())
    n_out = z.shape[0]
    observed = float(_set_means(c))
    out_means = _set_means(z)
    common: dict[str, Any] = {
        "user_mean": observed,
        "out_world_users": n_out,
        "marks_per_user": k,
        "out_world_mean_of_means": float(out_means.mean()),
    }
    if method == "users":
        ge = int(np.count_nonzero(_at_least(out_means, observed)))
        return TestResult(
            name="set-mean",
            statistic=observed,
            pvalue=(1 + ge) / (n_out + 1),
            kind="bound",
            method="exact rank of the user's set mean among N out-world users' set means, p = rank/(N+1)",
            k=k,
            m=n_out,
            min_attainable_p=1 / (n_out + 1),
            alternative="the user's marked set scores higher (more member-like) than out-world users' sets",
            assumptions=(SET_EXCHANGEABILITY, SAME_PATH, TIES),
            details={**common, "rank": 1 + ge},
        )
    if method != "permutation":
        raise ValueError(f"method must be 'users' or 'permutation', got {method!r}")
    pooled = np.concatenate([c, z.ravel()])
    n = pooled.size
    total = math.comb(n, k)
    if total <= n_resamples:
        hits = sum(
            int(_at_least(_set_means(pooled[list(s)]), observed))
            for s in itertools.combinations(range(n), k)
        )
        p, min_p = hits / total, 1 / total
        how = f"exact permutation test: the user's set mean against all C({n},{k}) K-subsets of the pooled items"
        extra: dict[str, Any] = {"subsets": total}
    else:
        rng = np.random.default_rng(seed)
        hits = 0
        chunk = max(1, min(10_000, 4_000_000 // n))  # bounds memory at ~32 MB per chunk
        for start in range(0, n_resamples, chunk):
            b = min(chunk, n_resamples - start)
            idx = np.argsort(rng.random((b, n)), axis=1)[:, :k]
            hits += int(np.count_nonzero(_at_least(_set_means(pooled[idx]), observed)))
        p, min_p = (1 + hits) / (n_resamples + 1), 1 / (n_resamples + 1)
        how = f"Monte-Carlo permutation p-value over pooled items, (1 + #{{mean_b >= t}})/(B+1), B={n_resamples}"
        extra = {"n_resamples": n_resamples, "seed": seed}
    return TestResult(
        name="set-mean-permutation",
        statistic=observed,
        pvalue=float(p),
        kind="bound",
        method=how,
        k=k,
        m=n - k,
        min_attainable_p=float(min_p),
        alternative="the user's marked set scores higher (more member-like) than random sets of marks",
        assumptions=(ITEM_EXCHANGEABILITY, SAME_PATH, TIES),
        details={**common, **extra},
    )
