"""Attack scores on labelled texts -> the metrics of `harness.stats.metrics.mi_metrics`, a table
and a ROC curve on log-log axes (where low-FPR differences are visible, as LiRA argues).

All numbers are estimates. "TPR at FPR <= x" is the largest TPR over thresholds whose FPR is at
most x (inclusive), "member" meaning score >= threshold; CIs are stratified percentile bootstraps.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np

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


def roc_curve(member: np.ndarray, nonmember: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every threshold, member iff score >= threshold, from strict to loose."""
    thresholds = np.unique(np.concatenate([member, nonmember]))[::-1]
    nm, mm = np.sort(nonmember), np.sort(member)
    fpr = (nm.size - np.searchsorted(nm, thresholds, side="left")) / nm.size
    tpr = (mm.size - np.searchsorted(mm, thresholds, side="left")) / mm.size
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def roc_loglog_png(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "") -> bytes:
    """ROC curves {label: (member scores, non-member scores)} on log-log axes, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    floor = 1.0
    for label, (member, nonmember) in curves.items():
        fpr, tpr = roc_curve(np.asarray(member), np.asarray(nonmember))
        floor = min(floor, 1 / max(len(member), len(nonmember)))
        ax.plot(np.maximum(fpr, floor / 2), np.maximum(tpr, floor / 2), label=label, lw=1.3)
    ax.plot([floor / 2, 1], [floor / 2, 1], ls="--", color="gray", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor / 2, 1)
    ax.set_ylim(floor / 2, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
