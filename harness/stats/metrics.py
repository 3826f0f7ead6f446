"""Estimates, never bounds: extrapolated exposure and ROC metrics on labelled member sets."""

from __future__ import annotations

import math
from collections.abc import Sequence
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
