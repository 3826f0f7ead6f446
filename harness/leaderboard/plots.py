"""One figure per series: -log10 p (exact bounds) and AUC (estimates, with intervals) against
the series' x (training step, canary repetitions, model size, ...)."""

from __future__ import annotations

from collections.abc import Sequence

from harness.figures import fig_png
from harness.leaderboard.config import LeaderboardConfig, SeriesEntry
from harness.leaderboard.table import CellSummary


def _points(config: LeaderboardConfig, cells: Sequence[CellSummary], series: str, task: str
            ) -> list[tuple[float, CellSummary]]:
    xs = {m.name: m.series[series] for m in config.models if series in m.series}
    pts = [(xs[c.model], c) for c in cells
           if c.task == task and c.model in xs and c.status == "done"]
    return sorted(pts, key=lambda p: p[0])


def series_plot_png(
    config: LeaderboardConfig, cells: Sequence[CellSummary], s: SeriesEntry
) -> bytes:
    """Left: -log10 p of every canary task (exact bounds; dotted: Holm-adjusted). Right: AUC
    of every benchmark task with its interval, and the strongest blind baseline (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4), dpi=100)
    for t in config.tasks:
        pts = _points(config, cells, s.name, t.name)
        bound = [(x, c) for x, c in pts if c.is_bound]
        bench = [(x, c) for x, c in pts if c.auc is not None]
        if bound:
            line, = left.plot([x for x, _ in bound], [-c.log10_pvalue for _, c in bound],
                              marker="o", label=t.name)
            left.plot([x for x, _ in bound], [-(c.holm_log10 or 0.0) for _, c in bound],
                      ls=":", color=line.get_color())
        if bench:
            xs = [x for x, _ in bench]
            lo = [c.auc - c.auc_ci[0] if c.auc_ci else 0 for _, c in bench]
            hi = [c.auc_ci[1] - c.auc if c.auc_ci else 0 for _, c in bench]
            bars = right.errorbar(xs, [c.auc for _, c in bench], yerr=[lo, hi], marker="o",
                                  capsize=3, label=f"{t.name} (best model score)")
            right.plot(xs, [c.blind_auc for _, c in bench], ls="--", marker="x",
                       color=bars[0].get_color(), label=f"{t.name} (blind baseline)")
    left.set_ylabel("-log10 p (exact bound; dotted: Holm)")
    right.set_ylabel("ROC AUC (estimate, 95% CI)")
    right.axhline(0.5, color="grey", lw=0.8, ls=":")
    for ax in (left, right):
        ax.set_xlabel(s.x_label)
        ax.spines[["top", "right"]].set_visible(False)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False, fontsize=7, loc="upper center", ncol=2,
                      bbox_to_anchor=(0.5, -0.2))
    fig.suptitle(f"series: {s.name}", fontsize=10)
    fig.tight_layout()
    return fig_png(fig)
