"""Set-level mean test (MembershipTracker): a user's marked set against out-world users."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from harness.stats.result import SAME_PATH, TIES, TestResult, _iv_scores

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
