"""Self-contained HTML proof report (inline CSS, plots as data URIs, no external requests)."""

from __future__ import annotations

import json
import math
from html import escape

from harness.report.extraction import extraction_tables
from harness.report.plots import png_data_uri, score_plot_png
from harness.report.wording import (
    CACHED_SCORES,
    SECONDARY_CAVEAT,
    fmt_p,
    fmt_result_p,
    null_hypothesis,
    p_label,
    timeline,
    verdict,
)
from harness.results import AuditResult, Report

CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;color:#1b1f24;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}.verdict{padding:.8em 1em;border-radius:6px;margin:1em 0}
.reject{background:#fff4e6;border:1px solid #f59f00}.keep{background:#f1f3f5;border:1px solid #adb5bd}
code,.mono{font-family:ui-monospace,monospace;font-size:.88em;word-break:break-all}
.small{color:#57606a;font-size:.88em}img{max-width:100%}
.v-ok{color:#1a7f37;font-weight:600}.v-open{color:#9a6700;font-weight:600}
.v-FAIL{color:#cf222e;font-weight:600}
"""

VERDICT_WORD = {"ok": "✓ done", "open": "⚠ open", "FAIL": "✗ failed"}


def _timeline_table(a: AuditResult) -> str:
    rows = [_row("step", "when", "status", "evidence", header=True)]
    for step, when, v, detail in timeline(a):
        rows.append(_row(escape(step), escape(when), f"<span class='v-{v}'>"
                         f"{VERDICT_WORD.get(v, escape(v))}</span>", escape(detail)))
    return "<table>" + "".join(rows) + "</table>"


ROLE_SUFFIX = {"null-control": " — null control", "additional": " — additional analysis (not pre-registered)"}


def _row(*cells: str, header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _tests_table(a: AuditResult) -> str:
    rows = [_row("score", "role", "statistic", "value", "p-value", "kind", "smallest attainable p", "method", header=True)]
    for t in a.tests:
        r = t.result
        rows.append(
            _row(
                escape(t.score),
                "<b>primary</b> (pre-registered)" if t.primary else "secondary",
                escape(r.name),
                f"{r.statistic:g}",
                f"<b>{escape(fmt_result_p(r))}</b>",
                "exact bound" if r.kind == "bound" else "estimate, not a bound",
                escape(fmt_p(r.min_attainable_p, r.log10_min_attainable_p)),
                f"<span class=small>{escape(r.method)}</span>",
            )
        )
    return "<table>" + "".join(rows) + "</table>"


def _kv_table(pairs: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(_row(escape(k), v) for k, v in pairs) + "</table>"


def _audit_section(a: AuditResult, holm_p: float | None) -> str:
    prim = a.primary.result
    reject = prim.kind == "bound" and prim.pvalue <= a.alpha
    fp = a.model.fingerprint
    plan = a.canary_set.plan
    canaries = [i for i in a.items if i.role == "canary"]
    ranks = prim.details.get("canary_ranks")
    parts = [
        f"<h2>{escape(a.title)}{ROLE_SUFFIX.get(a.role, '')}</h2>",
        f"<div class='verdict {'reject' if reject else 'keep'}'><b>{escape(p_label(prim))}</b><br>"
        f"{escape(verdict(a))}</div>",
    ]
    if holm_p is not None and not math.isnan(holm_p):
        parts.append(f"<p>Holm-adjusted over the audits in this report: p ≤ {escape(fmt_p(holm_p))}</p>")
    parts += [
        "<h3>Protocol timeline</h3>",
        _timeline_table(a),
        f"<p><b>Null hypothesis.</b> {escape(null_hypothesis(a))}</p>",
        f"<p><b>Pre-registered plan</b> (committed with the canaries): score <code>{escape(str(plan['score']))}</code>, "
        f"statistic <code>{escape(str(plan['statistic']))}</code>, M = {plan['counterfactuals']}, "
        f"α = {plan['alpha']}.</p>"
        if a.task != "extraction"
        else f"<p><b>Pre-registered plan</b>: task <code>{escape(str(plan.get('task')))}</code>, "
        f"α = {plan['alpha']} (extraction uses no score function and no counterfactuals).</p>",
        _tests_table(a),
        f"<p class=small>{escape(SECONDARY_CAVEAT)}</p>",
    ]
    if any(i.role == "counterfactual" for i in a.items):  # extraction audits have none
        uri = png_data_uri(score_plot_png(a))
        parts.append(f"<img alt='canary scores against counterfactuals' src='{uri}'>")
    parts += [
        "<p><b>Assumptions of the primary test</b></p><ul>"
        + "".join(f"<li>{escape(s)}</li>" for s in prim.assumptions)
        + "</ul>",
        "<h3>Provenance of this audit</h3>",
        _kv_table(
            [
                ("model spec", f"<code>{escape(a.model.spec)}</code>"),
                ("model fingerprint", f"<code>{escape(json.dumps(fp, sort_keys=True))}</code>"),
                ("reference", f"<code>{escape(a.reference.spec)}</code>" if a.reference else "none"),
                ("canary file", f"<code>{escape(a.canary_set.path)}</code>"),
                ("canary commitment (sha256)", f"<code>{escape(a.canary_set.commitment)}</code>"),
                ("canary set created", escape(a.canary_set.created)
                 + (" <span class=small>(inside the commitment; its time is proven only by the "
                    "timestamp step above)</span>" if a.canary_set.format_version == 2 else
                    " <span class=small>(format v1: as written in the file, outside the "
                    "commitment; this report cannot verify it)</span>")),
                ("canary file format", f"v{a.canary_set.format_version}"),
                ("audit seed", f"<code>{escape(a.audit_seed)}</code>"),
                ("seed derivation", escape(a.seed_derivation)),
                ("started / finished", f"{escape(a.started)} / {escape(a.finished)}"),
            ]
        ),
    ]
    notes = (*a.notes, CACHED_SCORES) if a.task != "extraction" else a.notes
    parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    if a.task == "extraction":
        parts.append(extraction_tables(a))
        return "\n".join(parts)
    ctable = [_row("canary", "text", f"score ({escape(a.primary.score)})", "pooled rank", header=True)]
    for j, c in enumerate(canaries):
        rank = str(ranks[j]) if ranks and j < len(ranks) else ""
        ctable.append(_row(escape(c.id), f"<code>{escape(c.text)}</code>", f"{c.scores[a.primary.score]:.4f}", rank))
    parts.append(
        "<details><summary>Canaries, their scores and ranks (all per-item scores are in report.json)"
        "</summary><table>" + "".join(ctable) + "</table></details>"
    )
    return "\n".join(parts)


def _section(a: AuditResult, holm_p: float | None) -> str:
    if a.canary_set is None:  # a benchmark on labelled data: estimates, its own section
        from harness.report.mi import benchmark_section_html

        return benchmark_section_html(a)
    return _audit_section(a, holm_p)


def render_html(report: Report) -> str:
    prov = report.provenance
    holm = report.holm_adjusted or [None] * len(report.audits)
    summary = [_row("audit", "role", "primary p", "α", "verdict", header=True)]
    for a in report.audits:
        if a.canary_set is None:
            auc = a.primary.result.statistic
            summary.append(_row(escape(a.title), escape(a.role), f"none (AUC {auc:.3f} on "
                                f"{escape(a.primary.score)}, estimate)", "—", "no claim"))
            continue
        r = a.primary.result
        summary.append(
            _row(
                escape(a.title),
                escape(a.role),
                escape(p_label(r)),
                f"{a.alpha:g}",
                "H0 rejected" if r.kind == "bound" and r.pvalue <= a.alpha else "not rejected",
            )
        )
    body = [
        f"<h1>{escape(report.title)}</h1>",
        f"<p class=small>tdp-harness {escape(str(prov.get('harness_version')))} · git "
        f"<code>{escape(str(prov.get('git')))}</code> · {escape(report.created)}</p>",
        "<table>" + "".join(summary) + "</table>",
        "<p class=small>A p-value marked <i>exact bound</i> is a false-positive bound that holds "
        "whatever the model is, under the stated assumptions. Anything marked <i>estimate</i> is not "
        "a bound. Every statistic can be recomputed from the per-item scores in report.json.</p>",
    ]
    body += [_section(a, h) for a, h in zip(report.audits, holm, strict=True)]
    if report.notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in report.notes) + "</ul>")
    env = prov.get("environment", {})
    body.append("<h2>Environment</h2>" + _kv_table(
        [("command", f"<code>{escape(' '.join(map(str, prov.get('command', []))))}</code>")]
        + [(k, f"<code>{escape(json.dumps(v, sort_keys=True))}</code>") for k, v in env.items()]
    ))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(report.title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
