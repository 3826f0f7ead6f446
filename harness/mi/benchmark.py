"""The pure part of an MI benchmark: per-item scores and labels -> metrics, blind baselines and
the shift verdict; shared by the `mi-benchmark` task, its report section and `tdp verify`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.mi.blind import BLIND_PREFIX, BlindScores
from harness.mi.shift import ShiftVerdict, shift_verdict
from harness.results import AuditResult, ItemScores, NamedTest
from harness.stats import TestResult
from harness.stats.metrics import MI_RULE, MIMetrics, mi_metrics

ALTERNATIVE = "members score higher (more member-like) than non-members"
ASSUMPTIONS = (
    "the labels are right: 'members' were trained on and 'non-members' were not (the data "
    "provider's assertion; nothing in this report can check it)",
    "members and non-members come from the same distribution; if not, the metrics measure "
    "the difference between the two distributions, not membership (see the blind baselines)",
)


@dataclass(frozen=True)
class MISummary:
    """What one benchmark audit found, recomputable from its items."""

    model: dict[str, MIMetrics]
    blind: dict[str, MIMetrics]
    verdict: ShiftVerdict


def metrics_result(m: MIMetrics, method: str) -> TestResult:
    """An MI metric set as a TestResult: statistic = AUC, no p-value (NaN), kind estimate."""
    return TestResult(
        name="roc-auc",
        statistic=m.auc,
        pvalue=math.nan,
        kind="estimate",
        method=f"{method}; {MI_RULE}",
        k=m.n_members,
        m=m.n_nonmembers,
        min_attainable_p=math.nan,
        alternative=ALTERNATIVE,
        assumptions=ASSUMPTIONS,
        details=m.to_dict(),
    )


def score_arrays(items: Sequence[ItemScores], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(member scores, non-member scores) of one named score."""
    m = np.array([i.scores[name] for i in items if i.role == "member"], dtype=np.float64)
    n = np.array([i.scores[name] for i in items if i.role == "non-member"], dtype=np.float64)
    return m, n


def compute_tests(
    items: Sequence[ItemScores], names: Sequence[str], primary: str, n_bootstrap: int, seed: int
) -> tuple[NamedTest, ...]:
    """One `roc-auc` test per named score (model-based and blind), all with the same seed."""
    tests = []
    for name in names:
        m, n = score_arrays(items, name)
        metrics = mi_metrics(m, n, n_bootstrap=n_bootstrap, seed=seed)
        what = "blind baseline, never sees the model" if name.startswith(BLIND_PREFIX) else (
            "model-based score")
        method = f"ROC of {what}; stratified percentile bootstrap ({n_bootstrap} resamples)"
        tests.append(NamedTest(name, name == primary, metrics_result(metrics, method)))
    return tuple(tests)


def with_blind_scores(
    items: Sequence[ItemScores], blind: Sequence[BlindScores]
) -> tuple[ItemScores, ...]:
    """Items with every blind baseline's out-of-fold score added as `blind:<name>`."""
    out = []
    for j, item in enumerate(items):
        extra = {BLIND_PREFIX + b.name: float(b.scores[j]) for b in blind}
        out.append(ItemScores(item.id, item.role, item.text, {**item.scores, **extra}))
    return tuple(out)


def summarize(tests: Sequence[NamedTest]) -> MISummary:
    """Model-based and blind metrics from a benchmark's tests, and the shift verdict."""
    model, blind = {}, {}
    for t in tests:
        m = MIMetrics.from_dict(t.result.details)
        (blind if t.score.startswith(BLIND_PREFIX) else model)[t.score] = m
    return MISummary(model, blind, shift_verdict(model, blind))


def summary_of(a: AuditResult) -> MISummary:
    return summarize(a.tests)


def labelled_texts(items: Sequence[ItemScores]) -> tuple[list[str], list[bool]]:
    return [i.text for i in items], [i.role == "member" for i in items]


def benchmark_seed_int(seed: bytes) -> int:
    """The integer seed of the bootstrap and the cross-validation folds (from the audit seed)."""
    return int.from_bytes(seed[:4], "big")


def scores_by_name(items: Sequence[ItemScores]) -> Mapping[str, tuple[np.ndarray, np.ndarray]]:
    """Every score of the items as (members, non-members) arrays, in stored order."""
    names = list(items[0].scores) if items else []
    return {name: score_arrays(items, name) for name in names}
