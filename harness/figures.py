"""Figures as PNG bytes (matplotlib, headless), and the one log-log ROC plot every MI result uses."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from harness.stats.metrics import roc_points

ScoreArrays = Mapping[str, tuple[np.ndarray, np.ndarray]]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fig_png(fig: Any) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    return buf.getvalue()


def roc_plot_png(
    arrays: ScoreArrays, title: str = "", dashed: Callable[[str], bool] = lambda name: False
) -> bytes:
    """ROC curves {name: (member scores, non-member scores)} on log-log axes (low FPR is where
    MI claims live); chance is the diagonal. FPR = 0 and TPR = 0 cannot be drawn on log axes:
    they sit at half the smallest non-zero value (1/(2N)), the plot's lower edge."""
    plt = pyplot()
    n_non = max(n.size for _, n in arrays.values())
    n_mem = max(m.size for m, _ in arrays.values())
    lo_x, lo_y = 0.5 / n_non, 0.5 / n_mem
    fig, ax = plt.subplots(figsize=(5.4, 4.4), dpi=110)
    for name, (m, n) in arrays.items():
        fpr, tpr, _ = roc_points(np.asarray(m), np.asarray(n))
        ax.step(np.maximum(fpr, lo_x), np.maximum(tpr, lo_y), where="post",
                ls="--" if dashed(name) else "-", lw=1.3, label=name)
    ax.plot([lo_x, 1], [lo_x, 1], color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo_x, 1)
    ax.set_ylim(lo_y, 1.02)
    ax.set_xlabel("false-positive rate (log)")
    ax.set_ylabel("true-positive rate (log)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig_png(fig)


__all__ = ["fig_png", "pyplot", "roc_plot_png"]
