"""Attack scores on labelled texts -> the metrics of `harness.stats.metrics.mi_metrics`, a table
and a ROC curve on log-log axes (where low-FPR differences are visible, as LiRA argues).

All numbers are estimates. "TPR at FPR <= x" is the largest TPR over thresholds whose FPR is at
most x (inclusive), "member" meaning score >= threshold; CIs are stratified percentile bootstraps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from harness.figures import roc_plot_png
from harness.stats.metrics import MIMetrics, mi_metrics

FPRS = (0.001, 0.01)


def evaluate(
    scores: Mapping[str, np.ndarray],
    is_member: np.ndarray,
    fprs: Sequence[float] = FPRS,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, MIMetrics]:
    """mi_metrics of each named score on the same member / non-member split."""
    m = np.asarray(is_member, dtype=bool)
    if m.all() or not m.any():
        raise ValueError("need both members and non-members to measure an attack")
    out = {}
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        if s.shape != m.shape:
            raise ValueError(f"{name}: {s.shape} scores for {m.shape} labels")
        out[name] = mi_metrics(s[m], s[~m], fprs=tuple(fprs), n_bootstrap=n_bootstrap, seed=seed)
    return out


def _cell(value: float, ci: tuple[float, float] | None, pct: bool) -> str:
    f = (lambda v: f"{100 * v:.2f}%") if pct else (lambda v: f"{v:.3f}")
    return f(value) + (f" [{f(ci[0])}, {f(ci[1])}]" if ci else "")


def markdown_table(metrics: Mapping[str, MIMetrics], fprs: Sequence[float] = FPRS,
                   labels: Mapping[str, str] | None = None) -> str:
    """One row per score: AUC and TPR at each FPR bound, with CIs, then FPR at 100% TPR."""
    head = ["score", "AUC"] + [f"TPR @ FPR<={100 * x:g}%" for x in fprs] + ["FPR @ 100% TPR"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in metrics.items():
        cells = [(labels or {}).get(name, name), _cell(m.auc, m.ci.get("auc"), False)]
        cells += [_cell(m.tpr_at_fpr[x], m.ci.get(f"tpr_at_fpr<={x}"), True) for x in fprs]
        cells.append(_cell(m.fpr_at_full_tpr, m.ci.get("fpr_at_full_tpr"), True))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def roc_loglog_png(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "") -> bytes:
    """ROC curves {label: (member scores, non-member scores)} on log-log axes, as PNG bytes."""
    return roc_plot_png(curves, title)
