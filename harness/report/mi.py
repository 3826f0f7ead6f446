"""Report sections for membership-inference results: a log-log ROC plot and a metrics table for
any named score arrays (reusable by any MI task), and the `mi-benchmark` audit section."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

import numpy as np

from harness import figures
from harness.mi.blind import BLIND_PREFIX
from harness.results import AuditResult
from harness.stats.metrics import MI_RULE, MIMetrics, mi_metrics

ScoreArrays = Mapping[str, tuple[np.ndarray, np.ndarray]]


def roc_plot_png(arrays: ScoreArrays, title: str = "") -> bytes:
    """The log-log ROC of `harness.figures`, blind baselines dashed."""
    return figures.roc_plot_png(arrays, title, dashed=lambda name: name.startswith(BLIND_PREFIX))


def _ci(m: MIMetrics, key: str, value: float) -> str:
    lo, hi = m.ci.get(key, (float("nan"), float("nan")))
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]" if key in m.ci else f"{value:.3f}"


def metrics_rows(metrics: Mapping[str, MIMetrics]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the metrics table, shared by HTML and Markdown."""
    fprs = sorted({x for m in metrics.values() for x in m.tpr_at_fpr})
    level = next(iter(metrics.values())).ci_level if metrics else 0.95
    header = ["score", "kind", f"AUC [{level:.0%} CI]"]
    header += [f"TPR at FPR ≤ {x:g}" for x in fprs] + ["FPR at 100% TPR"]
    rows = []
    for name, m in metrics.items():
        kind = "blind baseline (no model)" if name.startswith(BLIND_PREFIX) else "model-based"
        row = [name, kind, _ci(m, "auc", m.auc)]
        row += [_ci(m, f"tpr_at_fpr<={x}", m.tpr_at_fpr[x]) if x in m.tpr_at_fpr else ""
                for x in fprs]
        rows.append(row + [_ci(m, "fpr_at_full_tpr", m.fpr_at_full_tpr)])
    return header, rows


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def mi_metrics_html(
    arrays: ScoreArrays, metrics: Mapping[str, MIMetrics] | None = None, title: str = ""
) -> str:
    """ROC plot and metrics table for named (member, non-member) score arrays; metrics are
    computed with `mi_metrics` defaults when not given. All values are estimates."""
    from harness.report.plots import png_data_uri

    metrics = metrics or {k: mi_metrics(m, n) for k, (m, n) in arrays.items()}
    uri = png_data_uri(roc_plot_png(arrays, title))
    return (
        f"<img alt='ROC curves, log-log axes' src='{uri}'>"
        "<p class=small>ROC on log-log axes; FPR or TPR of 0 is drawn at the lower edge "
        "(half the smallest non-zero value). Dashed: blind baselines.</p>"
        + _html_table(*metrics_rows(metrics))
        + f"<p class=small>Every value is an estimate, never a bound. {escape(MI_RULE)}.</p>"
    )


def mi_metrics_markdown(metrics: Mapping[str, MIMetrics]) -> list[str]:
    header, rows = metrics_rows(metrics)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + ["", f"Every value is an estimate, never a bound. {MI_RULE}."]


def _metrics_of(a: AuditResult) -> dict[str, MIMetrics]:
    return {t.score: MIMetrics.from_dict(t.result.details) for t in a.tests}


def benchmark_section_html(a: AuditResult) -> str:
    """The section of one mi-benchmark audit: verdict, caveat, ROC, table, provenance."""
    from harness.mi.benchmark import score_arrays, summary_of
    from harness.mi.shift import NO_BOUND

    v = summary_of(a).verdict
    arrays = {t.score: score_arrays(a.items, t.score) for t in a.tests}
    d = a.dataset
    data = (f"{escape(d.name)}: {d.n_members} members, {d.n_nonmembers} non-members; source "
            f"<code>{escape(str(d.source))}</code>; items sha256 <code>{d.sha256}</code>"
            if d is not None else "not recorded")
    cls = "reject" if v.shifted else "keep"
    return "\n".join([
        f"<h2>{escape(a.title)} — benchmark (estimates, no claim)</h2>",
        f"<div class='verdict {cls}'><b>{escape(v.sentence())}</b></div>",
        f"<p><b>No false-positive bound.</b> {escape(NO_BOUND)}</p>",
        mi_metrics_html(arrays, _metrics_of(a), a.title),
        "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in a.notes
                         if n not in (NO_BOUND, v.sentence())) + "</ul>",
        "<h3>Provenance of this benchmark</h3><table>"
        f"<tr><td>data</td><td>{data}</td></tr>"
        f"<tr><td>model spec</td><td><code>{escape(a.model.spec)}</code></td></tr>"
        f"<tr><td>reference</td><td>{escape(a.reference.spec) if a.reference else 'none'}</td></tr>"
        f"<tr><td>seed</td><td><code>{a.audit_seed}</code> ({escape(a.seed_derivation)})</td></tr>"
        f"<tr><td>started / finished</td><td>{escape(a.started)} / {escape(a.finished)}</td></tr>"
        "</table>",
    ])


def benchmark_section_markdown(a: AuditResult) -> list[str]:
    from harness.mi.benchmark import summary_of
    from harness.mi.shift import NO_BOUND

    v = summary_of(a).verdict
    lines = [f"## {a.title} (benchmark: estimates, no claim)", "", f"**{v.sentence()}**", "",
             f"No false-positive bound. {NO_BOUND}", ""]
    lines += mi_metrics_markdown(_metrics_of(a))
    if a.dataset is not None:
        d = a.dataset
        lines += ["", f"- data: {d.name}, {d.n_members} members, {d.n_nonmembers} non-members, "
                  f"items sha256 `{d.sha256}`"]
    lines.append(f"- seed: `{a.audit_seed}` ({a.seed_derivation})")
    return lines + [""]
