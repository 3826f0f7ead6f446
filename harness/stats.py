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


# --- set-level mean test (MembershipTracker) ---------------------------------------------------

#: largest number of K-subsets enumerated exactly by the permutation set-mean test
def exposure_estimate(canary_score: float, counterfactual_scores: Sequence[float]) -> TestResult:
    """Extrapolated exposure: fit a skew-normal to the counterfactual scores and report
    -log2 P_fit(S >= s(c)). An estimate (the fit is a model), never a bound."""
    from scipy.stats import skewnorm

    z = _iv_scores("counterfactual_scores", counterfactual_scores, min_len=3)
    c = float(_iv_scores("canary_score", [canary_score])[0])
    a, loc, scale = skewnorm.fit(z)
    tail = float(skewnorm.logsf(c, a, loc, scale))
    bits = -tail / math.log(2)
    return TestResult(
        name="exposure-estimate",
        statistic=bits,
        pvalue=float(math.exp(tail)),
        kind="estimate",
        method="skew-normal fit to the counterfactual scores; exposure = -log2 P_fit(S >= s(c))",
        k=1,
        m=z.size,
        min_attainable_p=0.0,
        assumptions=("the counterfactual score distribution is skew-normal (a model, not a fact)",),
        details={
            "skewnorm": {"a": float(a), "loc": float(loc), "scale": float(scale)},
            "exact_exposure_bits": exposure(rank_against(c, z), z.size),
        },
    )


# --- MI metrics on labelled sets (evidence, not bounds) ----------------------------------------


@dataclass(frozen=True)
class MIMetrics:
    """ROC metrics of a score on labelled member/non-member sets; all are estimates.

    Rule: predict "member" when score >= threshold. `tpr_at_fpr[x]` is the largest TPR over
    thresholds whose FPR <= x (inequality inclusive). `fpr_at_full_tpr` is the FPR at the
    largest threshold that still flags every member (threshold = min member score).
    """

    auc: float
    tpr_at_fpr: dict[float, float]
    fpr_at_full_tpr: float
    n_members: int
    n_nonmembers: int
    ci: dict[str, tuple[float, float]]
    ci_level: float
    kind: Kind = "estimate"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tpr_at_fpr"] = {str(k): v for k, v in self.tpr_at_fpr.items()}
        d["ci"] = {k: list(v) for k, v in self.ci.items()}
        return d


def roc_auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """P(s(member) > s(non-member)) + 0.5 P(tie): the Mann-Whitney form of the ROC AUC."""
    allv = np.concatenate([members, nonmembers])
    from scipy.stats import rankdata

    r = rankdata(allv)[: members.size]
    u = r.sum() - members.size * (members.size + 1) / 2
    return float(u / (members.size * nonmembers.size))


def tpr_at_fpr(members: np.ndarray, nonmembers: np.ndarray, max_fpr: float) -> float:
    """Largest TPR over thresholds tau (member iff score >= tau) with FPR(tau) <= max_fpr."""
    thresholds = np.unique(np.concatenate([members, nonmembers, [np.inf]]))
    nm = np.sort(nonmembers)
    mm = np.sort(members)
    fpr = (nm.size - np.searchsorted(nm, thresholds, side="left")) / nm.size
    tpr = (mm.size - np.searchsorted(mm, thresholds, side="left")) / mm.size
    ok = fpr <= max_fpr + 1e-15
    return float(tpr[ok].max())


def fpr_at_full_tpr(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """FPR at the threshold min(member scores): the fraction of non-members scoring >= it."""
    return float(np.count_nonzero(nonmembers >= members.min()) / nonmembers.size)


def mi_metrics(
    member_scores: Sequence[float],
    nonmember_scores: Sequence[float],
    fprs: Sequence[float] = (0.001, 0.01, 0.1),
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> MIMetrics:
    """AUC, TPR at FPR <= x, FPR at 100% TPR, with stratified percentile-bootstrap CIs."""
    m = _iv_scores("member_scores", member_scores)
    n = _iv_scores("nonmember_scores", nonmember_scores)

    def point(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        d = {"auc": roc_auc(a, b), "fpr_at_full_tpr": fpr_at_full_tpr(a, b)}
        for x in fprs:
            d[f"tpr_at_fpr<={x}"] = tpr_at_fpr(a, b, x)
        return d

    est = point(m, n)
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in est}
    for _ in range(n_bootstrap):
        d = point(m[rng.integers(0, m.size, m.size)], n[rng.integers(0, n.size, n.size)])
        for key, v in d.items():
            boots[key].append(v)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    ci = (
        {k: (float(np.quantile(v, lo_q)), float(np.quantile(v, hi_q))) for k, v in boots.items()}
        if n_bootstrap
        else {}
    )
    return MIMetrics(
        auc=est["auc"],
        tpr_at_fpr={x: est[f"tpr_at_fpr<={x}"] for x in fprs},
        fpr_at_full_tpr=est["fpr_at_full_tpr"],
        n_members=m.size,
        n_nonmembers=n.size,
        ci=ci,
        ci_level=level,
    )


# --- dispatch by the plan's statistic name -----------------------------------------------------

#: statistics a plan may name; the value says how many counterfactual items they need per M
STATISTICS: dict[str, str] = {
    "rank": "single canary vs M counterfactuals",
    "rank-sum": "K canaries vs one shared pool of M counterfactuals",
    "uniform-rank-sum": "K canaries, each vs its own pool of M counterfactuals (K*M items)",
    "rank-first-count": "K canaries, each vs its own pool of M (K*M items); count ranked first",
    "set-mean": "mean score of a user's K marks vs M out-world users' K marks (K*M items)",
}
PER_CANARY_POOLS = ("uniform-rank-sum", "rank-first-count", "set-mean")


class PlanViolation(ValueError):
    """A report or audit uses a primary test other than the pre-registered one."""


def counterfactuals_needed(statistic: str, k: int, m: int) -> int:
    """Number of counterfactual items a statistic needs for K canaries and the plan's M."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}")
    return k * m if statistic in PER_CANARY_POOLS else m


def run_statistic(name: str, canary: np.ndarray, counterfactual: np.ndarray) -> TestResult:
    """Dispatch a plan's statistic by name (see STATISTICS)."""
    canary = np.asarray(canary, dtype=np.float64)
    counterfactual = np.asarray(counterfactual, dtype=np.float64)
    if name == "rank-sum":
        return rank_sum_test(canary, counterfactual)
    if name == "rank":
        if len(canary) != 1:
            raise ValueError("statistic 'rank' is for a single canary; use 'rank-sum' for K > 1")
        return rank_test(float(canary[0]), counterfactual)
    if name == "uniform-rank-sum":
        return uniform_rank_sum_test(canary, counterfactual)
    if name == "rank-first-count":
        return rank_first_count_test(canary, counterfactual)
    if name == "set-mean":  # counterfactuals are out-world users' marks, K consecutive per user
        if len(counterfactual) % len(canary):
            raise ValueError("set-mean needs the counterfactual marks in whole users of K marks")
        return set_mean_test(canary, np.reshape(counterfactual, (-1, len(canary))))
    raise ValueError(f"unknown statistic {name!r}; known: {', '.join(STATISTICS)}")


#: statistics computed on a score function; the plan's `score` is binding only for these
SCORE_STATISTICS = frozenset(
    {"rank", "rank-sum", "uniform-rank-sum", "rank-first-count", "set-mean"}
)


def check_primary(
    plan: dict[str, Any], task: str, tests: Sequence[Any], where: str = "audit"
) -> bool:
    """Refuse an audit of the plan's task whose primary test is not the plan's.

    Returns True when the plan governs this audit (same task) and its primary test is the
    pre-registered one; False when the audit runs another task than the plan's (an
    additional analysis, which the report must label as such). `tests` are NamedTest-like
    objects with `.score`, `.primary` and `.result.name`.
    """
    prim = [t for t in tests if t.primary]
    if len(prim) != 1:
        raise PlanViolation(
            f"{where}: {len(prim)} primary tests, exactly 1 (the plan's) is required"
        )
    if task != plan.get("task", "canary-rank"):
        return False
    t, statistic, score = prim[0], plan["statistic"], plan["score"]
    if t.result.name != statistic or (statistic in SCORE_STATISTICS and t.score != score):
        raise PlanViolation(
            f"{where}: primary test is {t.result.name!r} on score {t.score!r}, but the committed "
            f"plan pre-registers {statistic!r}"
            + (f" on {score!r}" if statistic in SCORE_STATISTICS else "")
            + "; other statistics may only be secondary"
        )
    return True



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
