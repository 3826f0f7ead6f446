"""The statistics a plan may name, dispatch by name, and the pre-registration check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.stats.ranks import (
    rank_first_count_test,
    rank_sum_test,
    rank_test,
    uniform_rank_sum_test,
)
from harness.stats.result import TestResult
from harness.stats.set_mean import set_mean_test

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


def run_statistic(
    name: str,
    canary: np.ndarray,
    counterfactual: np.ndarray,
    details: dict[str, Any] | None = None,
) -> TestResult:
    """Dispatch a statistic by name (see STATISTICS); `details` of a stored result supply the
    settings of the secondary set-mean permutation test (its resamples and their seed)."""
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
    if name == "set-mean-permutation":
        d = details or {}
        if len(counterfactual) % len(canary):
            raise ValueError("set-mean needs the counterfactual marks in whole users of K marks")
        return set_mean_test(
            canary,
            np.reshape(counterfactual, (-1, len(canary))),
            method="permutation",
            n_resamples=int(d.get("subsets") or d.get("n_resamples") or 100_000),
            seed=int(d.get("seed", 0)),
        )
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


UNCOMMITTED_REFERENCE = (
    "the reference model was not committed before the canaries were chosen, so it could have "
    "been fitted to the counterfactuals (whose texts the auditor sees): p-values of "
    "reference-based scores are not bounds"
)


def reference_problem(plan: dict[str, Any], reference_fingerprint: dict[str, Any] | None) -> str | None:
    """Why reference-based scores carry no bound in this audit, or None when the reference used
    is the one the plan committed (by identity: weights and tokenizer content)."""
    from harness.backends.base import Fingerprint

    committed = plan.get("reference")
    if not committed:
        return UNCOMMITTED_REFERENCE
    if reference_fingerprint is None:
        return "no reference model was given, although the plan commits one"
    used = Fingerprint.from_dict(reference_fingerprint).identity_digest()
    if used != committed["identity"]:
        return (
            f"the reference model used (identity {used}) is not the committed one "
            f"({committed['spec']}, identity {committed['identity']})"
        )
    return None


def needs_reference(score: str) -> bool:
    from harness.stats.scores import SCORES

    return score in SCORES and "reference" in SCORES[score].needs


def label_reference_tests(tests: Sequence[Any], problem: str | None) -> tuple[Any, ...]:
    """Relabel tests on reference-based scores as estimates when the reference is not the
    committed one; `tests` are NamedTest-like (.score, .result), rebuilt with dataclasses.replace."""
    from dataclasses import replace

    if problem is None:
        return tuple(tests)
    out = []
    for t in tests:
        if needs_reference(t.score) and t.result.kind == "bound":
            r = replace(t.result, kind="estimate", method=f"{t.result.method}; NOT a bound: {problem}")
            t = replace(t, result=r)
        out.append(t)
    return tuple(out)
