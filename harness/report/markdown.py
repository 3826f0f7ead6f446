"""Short Markdown summary of a report."""

from __future__ import annotations

from harness.report.wording import (
    CACHED_SCORES,
    SECONDARY_CAVEAT,
    fmt_p,
    fmt_result_p,
    p_label,
    timeline,
    verdict,
)
from harness.results import Report


def render_markdown(report: Report) -> str:
    prov = report.provenance
    lines = [
        f"# {report.title}",
        "",
        f"tdp-harness {prov.get('harness_version')} (git `{prov.get('git')}`), {report.created}",
        "",
        "| audit | role | primary test | p-value | kind | smallest attainable p |",
        "|---|---|---|---|---|---|",
    ]
    for a in report.audits:
        t = a.primary
        r = t.result
        if a.canary_set is None:
            lines.append(f"| {a.title} | {a.role} | AUC on `{t.score}` | none (AUC "
                         f"{r.statistic:.3f}, estimate) | estimate | — |")
            continue
        lines.append(
            f"| {a.title} | {a.role} | {r.name} on `{t.score}` | {fmt_result_p(r)} "
            f"| {r.kind} | {fmt_p(r.min_attainable_p, r.log10_min_attainable_p)} |"
        )
    lines.append("")
    for n, a in enumerate(report.audits):
        if a.canary_set is None:
            from harness.report.mi import benchmark_section_markdown

            lines += benchmark_section_markdown(a)
            continue
        lines += [f"## {a.title}", "", f"**{p_label(a.primary.result)}.** {verdict(a)}", ""]
        if report.holm_adjusted is not None and a.role == "audit":
            lines += [f"Holm-adjusted over this report's claims: p ≤ {fmt_p(report.holm_adjusted[n])}", ""]
        lines += ["Protocol timeline:", "", "| step | when | status | evidence |", "|---|---|---|---|"]
        for step, when, v, detail in timeline(a):
            lines.append(f"| {step} | {when} | {v} | {detail} |")
        lines.append("")
        lines.append(f"- canary commitment (format v{a.canary_set.format_version}): "
                     f"`{a.canary_set.commitment}`")
        lines.append(f"- audit seed: `{a.audit_seed}` ({a.seed_derivation})")
        secondary = [t for t in a.tests if not t.primary]
        for t in secondary:
            r = t.result
            what = "bound, not pre-registered" if r.kind == "bound" else "estimate, not a bound"
            lines.append(f"- secondary: {r.name} on `{t.score}`: p = {fmt_result_p(r)} ({what})")
        if secondary:
            lines.append(f"- {SECONDARY_CAVEAT}")
        if a.task != "extraction":
            lines.append(f"- {CACHED_SCORES}")
        lines.append("")
    for n in report.notes:
        lines.append(f"> {n}")
    return "\n".join(lines) + "\n"
