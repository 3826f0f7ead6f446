"""Plots embedded in reports as base64 PNG (matplotlib, Agg backend)."""

from __future__ import annotations

import base64

import numpy as np

from harness.figures import fig_png
from harness.results import AuditResult


def score_plot_png(a: AuditResult) -> bytes:
    """Histogram of counterfactual scores with the canaries' scores marked, primary score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score = a.primary.score
    cf = np.array([i.scores[score] for i in a.items if i.role == "counterfactual"])
    ca = np.array([i.scores[score] for i in a.items if i.role == "canary"])
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    lo, hi = float(min(cf.min(), ca.min())), float(max(cf.max(), ca.max()))
    bins = np.linspace(lo, hi, 50)
    ax.hist(cf, bins=bins, color="#9aa5b1", label=f"counterfactuals (M={cf.size})")
    ax.hist(ca, bins=bins, color="#d9480f", alpha=0.8, label=f"canaries (K={ca.size})")
    ax.set_xlabel(f"score: {score} (larger = more member-like)")
    ax.set_ylabel("count")
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig_png(fig)


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
