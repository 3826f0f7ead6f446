"""Estimates, never bounds: extrapolated exposure and ROC metrics on labelled member sets.

ROC curves and AUC come from scikit-learn (`roc_curve`, `auc`); the percentile bootstrap is
written here because it resamples members and non-members separately (stratified), which
`scipy.stats.bootstrap` does not do for a two-sample statistic with several outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.stats.ranks import exposure, rank_against
from harness.stats.result import Kind, TestResult, _iv_scores


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


#: false-positive rates at which TPR is reported by default
DEFAULT_FPRS = (0.001, 0.01, 0.05)
#: the decision rule and inequality every MI metric here refers to
MI_RULE = (
    "predict 'member' when score >= threshold; TPR at FPR <= x is the largest TPR over "
    "thresholds whose FPR is at most x (inclusive); FPR at 100% TPR is the FPR at the largest "
    "threshold that flags every member"
)


@dataclass(frozen=True)
class MIMetrics:
    """ROC metrics of a score on labelled member/non-member sets; all are estimates.

    Rule: `MI_RULE`. `ci` holds stratified percentile-bootstrap intervals (members and
    non-members resampled separately) at `ci_level`; they describe sampling variation of these
    items only, not of the model or of how the items were collected.
    """

    auc: float
    tpr_at_fpr: dict[float, float]
    fpr_at_full_tpr: float
    n_members: int
    n_nonmembers: int
    ci: dict[str, tuple[float, float]]
    ci_level: float
    kind: Kind = "estimate"
    n_bootstrap: int = 0
    rule: str = MI_RULE

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tpr_at_fpr"] = {str(k): v for k, v in self.tpr_at_fpr.items()}
        d["ci"] = {k: list(v) for k, v in self.ci.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MIMetrics:
        d = dict(d)
        d["tpr_at_fpr"] = {float(k): float(v) for k, v in d["tpr_at_fpr"].items()}
        d["ci"] = {k: (float(v[0]), float(v[1])) for k, v in d["ci"].items()}
        return cls(**d)

    def resolution_note(self) -> str | None:
        """What the smallest FPRs mean with this few non-members (None if all are resolved)."""
        step = 1 / self.n_nonmembers
        low = [x for x in self.tpr_at_fpr if 0 < x < step]
        if not low:
            return None
        return (
            f"with {self.n_nonmembers} non-members the smallest non-zero FPR is {step:.3g}, so "
            f"TPR at FPR <= {', '.join(f'{x:g}' for x in low)} is TPR at FPR = 0"
        )


def _labels_scores(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.concatenate([np.ones(members.size), np.zeros(nonmembers.size)])
    return y, np.concatenate([members, nonmembers])


def roc_points(
    members: np.ndarray, nonmembers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FPR, TPR, threshold) at every distinct threshold, starting at (0, 0, inf)."""
    from sklearn.metrics import roc_curve

    y, s = _labels_scores(members, nonmembers)
    return roc_curve(y, s, drop_intermediate=False)


def roc_auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """P(s(member) > s(non-member)) + 0.5 P(tie): the area under the ROC curve."""
    from sklearn.metrics import auc

    fpr, tpr, _ = roc_points(members, nonmembers)
    return float(auc(fpr, tpr))


def _tpr_at(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    return float(tpr[fpr <= max_fpr + 1e-15].max())


def tpr_at_fpr(members: np.ndarray, nonmembers: np.ndarray, max_fpr: float) -> float:
    """Largest TPR over thresholds tau (member iff score >= tau) with FPR(tau) <= max_fpr."""
    fpr, tpr, _ = roc_points(members, nonmembers)
    return _tpr_at(fpr, tpr, max_fpr)


def fpr_at_full_tpr(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """FPR at the threshold min(member scores): the fraction of non-members scoring >= it."""
    return float(np.count_nonzero(nonmembers >= members.min()) / nonmembers.size)


def _point(m: np.ndarray, n: np.ndarray, fprs: Sequence[float]) -> dict[str, float]:
    """Every metric from one ROC curve (one sklearn call per sample)."""
    from sklearn.metrics import auc

    fpr, tpr, _ = roc_points(m, n)
    d = {"auc": float(auc(fpr, tpr)), "fpr_at_full_tpr": float(fpr[np.argmax(tpr >= 1.0)])}
    for x in fprs:
        d[f"tpr_at_fpr<={x}"] = _tpr_at(fpr, tpr, x)
    return d


def _point_sorted(m: np.ndarray, n: np.ndarray, fprs: Sequence[float]) -> dict[str, float]:
    """`_point` by counting in sorted arrays: the same numbers, ~50x faster per bootstrap
    sample than a `roc_curve` call (tested equal in tests/test_mi_metrics.py)."""
    ms, ns = np.sort(m), np.sort(n)
    below = np.searchsorted(ns, ms, side="left")
    ties = np.searchsorted(ns, ms, side="right") - below
    auc_value = float((below + 0.5 * ties).sum() / (ms.size * ns.size))
    thresholds = np.concatenate([ms, [np.inf]])  # the TPR steps happen at member scores
    tpr = (ms.size - np.searchsorted(ms, thresholds, side="left")) / ms.size
    fpr = (ns.size - np.searchsorted(ns, thresholds, side="left")) / ns.size
    d = {"auc": auc_value, "fpr_at_full_tpr": float(fpr[0])}
    for x in fprs:
        d[f"tpr_at_fpr<={x}"] = _tpr_at(fpr, tpr, x)
    return d


def mi_metrics(
    member_scores: Sequence[float],
    nonmember_scores: Sequence[float],
    fprs: Sequence[float] = DEFAULT_FPRS,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> MIMetrics:
    """AUC, TPR at FPR <= x, FPR at 100% TPR, with stratified percentile-bootstrap CIs."""
    m = _iv_scores("member_scores", member_scores)
    n = _iv_scores("nonmember_scores", nonmember_scores)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    est = _point(m, n, fprs)
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in est}
    for _ in range(n_bootstrap):
        mb, nb = m[rng.integers(0, m.size, m.size)], n[rng.integers(0, n.size, n.size)]
        d = _point_sorted(mb, nb, fprs)
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
        n_bootstrap=n_bootstrap,
    )


def mi_table(
    scores: Mapping[str, tuple[Sequence[float], Sequence[float]]], **options: Any
) -> dict[str, MIMetrics]:
    """`mi_metrics` for every named (member scores, non-member scores) pair, same options."""
    return {name: mi_metrics(m, n, **options) for name, (m, n) in scores.items()}
