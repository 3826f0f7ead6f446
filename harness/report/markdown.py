"""Short Markdown summary of a report."""

from __future__ import annotations

from harness.report.wording import fmt_p, p_label, verdict
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
        lines.append(
            f"| {a.title} | {a.role} | {t.result.name} on `{t.score}` | {fmt_p(t.result.pvalue)} "
            f"| {t.result.kind} | {fmt_p(t.result.min_attainable_p)} |"
        )
    lines.append("")
    for a in report.audits:
        lines += [f"## {a.title}", "", f"**{p_label(a.primary.result)}.** {verdict(a)}", ""]
        lines.append(f"- canary commitment: `{a.canary_set.commitment}`")
        lines.append(f"- audit seed: `{a.audit_seed}` ({a.seed_derivation})")
        for t in a.tests:
            if not t.primary:
                lines.append(
                    f"- secondary: {t.result.name} on `{t.score}`: p = {fmt_p(t.result.pvalue)} ({t.result.kind})"
                )
        lines.append("")
    for n in report.notes:
        lines.append(f"> {n}")
    return "\n".join(lines) + "\n"
