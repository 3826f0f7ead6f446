"""HTML tables for extraction audits: prefix / truth / extracted, per canary and per document."""

from __future__ import annotations

from html import escape
from typing import Any

from harness.report.wording import fmt_p
from harness.results import AuditResult


def _row(*cells: str, header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _canary_table(a: AuditResult) -> str:
    d = a.primary.result.details
    rows = [
        _row(
            "canary",
            "public prefix",
            "secret suffix (truth)",
            "greedy extraction",
            "matched units",
            f"best of {1 + len(_first_samples(d))}",
            "greedy p (per canary)",
            f"Holm-adjusted over the {len(d.get('extractions', []))} canaries",
            header=True,
        )
    ]
    holm = d.get("per_canary_holm_log10_p") or [float("nan")] * len(d.get("extractions", []))
    for e, p, lp, hp in zip(
        d.get("extractions", []),
        d.get("per_canary_p", []),
        d.get("per_canary_log10_p", []),
        holm,
        strict=False,
    ):
        marks = " ".join(
            f"<b>{escape(str(g))}</b>" if g == t else f"<s>{escape(str(g))}</s>"
            for g, t in zip(e["greedy_units"], e["truth_units"], strict=False)
        )
        rows.append(
            _row(
                escape(e["id"]),
                f"<code>{escape(e['prefix'])}</code>",
                f"<code>{escape(e['truth'])}</code>",
                f"<code>{escape(e['greedy'][:300])}</code><br>"
                f"<span class=small>units: {marks}</span>",
                f"{e['greedy_matches']} / {len(e['truth_units'])}",
                str(e["best_matches"]),
                escape(fmt_p(p, lp)),
                escape(fmt_p(10.0**hp, hp)) if hp == hp else "",
            )
        )
    return (
        "<h3>Extracted strings next to the truth</h3><p class=small>Units in bold match the secret "
        "unit at the same position; struck-through units do not. Every continuation, greedy and "
        "sampled, is stored in report.json. Each per-canary p-value is valid for that canary "
        "alone; the smallest of K is not: it must be adjusted for having looked at K (the Holm "
        "column), and the pre-registered claim is the set-level primary test.</p><table>"
        + "".join(rows) + "</table>"
    )


def _first_samples(d: dict[str, Any]) -> list[Any]:
    ex = d.get("extractions") or [{}]
    return ex[0].get("samples", [])


def _document_table(details: dict[str, Any]) -> str:
    rows = [
        _row(
            "doc",
            "prefix (end)",
            "true continuation",
            "extracted",
            "exact prefix words",
            "longest common substring",
            "BLEU",
            header=True,
        )
    ]
    for r in details["documents"]:
        rows.append(
            _row(
                str(r["document"]),
                f"<code>…{escape(r['prefix'][-120:])}</code>",
                f"<code>{escape(r['truth'])}</code>",
                f"<code>{escape(r['extracted'])}</code>",
                str(r["exact_prefix_words"]),
                f"{r['lcs_chars']} chars: <code>{escape(r['lcs'])}</code>",
                f"{r['bleu']:.3f}",
            )
        )
    return (
        "<h3>Document extraction (evidence, no bound)</h3><p class=small>Natural text has no null "
        "distribution: these overlaps cannot be turned into a false-positive probability.</p>"
        "<table>" + "".join(rows) + "</table>"
    )


def extraction_tables(a: AuditResult) -> str:
    """The extraction audit's tables: canaries always, documents when they were run."""
    parts = [_canary_table(a)]
    for t in a.tests:
        if t.score == "document-extraction":
            parts.append(_document_table(t.result.details))
    return "\n".join(parts)
