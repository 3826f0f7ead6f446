"""The PDF expert report: the bundle's report.html pages behind a plain-words summary and a
protocol timeline, followed by an appendix of hashes; rendered by WeasyPrint (HTML + CSS for
print: https://doc.courtbouillon.org/weasyprint/stable/). One source of truth: each run's
section is the body of its report.html member, byte for byte, under a print stylesheet.

The PDF's metadata names the sha256 of every report.json it was rendered from (custom key
`tdpreportsha256`), so that `tdp evidence verify` can tell a PDF made from other data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

from harness.evidence.bundle import Member
from harness.evidence.custody import CustodyRecord
from harness.evidence.derived import identity_digest
from harness.report.wording import null_hypothesis, p_label, verdict
from harness.results import AuditResult, Report

SOURCES_KEY = "tdpreportsha256"  # WeasyPrint lower-cases custom metadata names

PRINT_CSS = """
@page { size: A4; margin: 16mm 14mm 18mm;
  @bottom-center { content: "page " counter(page) " of " counter(pages); font-size: 8pt;
                   color: #57606a; font-family: system-ui, sans-serif }
  @top-right { content: string(doctitle); font-size: 8pt; color: #57606a;
               font-family: system-ui, sans-serif } }
html, body { font-size: 9.5pt; max-width: none; margin: 0; padding: 0 }
h1.doctitle { string-set: doctitle content() }
section.page { break-after: page }
h1 { font-size: 16pt } h2 { font-size: 13pt; break-after: avoid } h3 { break-after: avoid }
table { width: 100%; font-size: 8.5pt } tr, img { break-inside: avoid }
td:last-child, td code, td .hash { overflow-wrap: anywhere }
.hash { font-family: monospace; font-size: 7.5pt; word-break: break-all }
summary { font-weight: 600 }
details > :not(summary) { display: none }  /* collapsed, as a browser shows report.html */
.plain p, .plain li { font-size: 10pt; line-height: 1.35; margin: .35em 0 }
.plain h2 { margin-top: .8em }
"""

MEANS = (
    "The p-value is a bound on a false positive: if the model had NOT been trained on the "
    "canaries, a result at least this extreme would occur with at most this probability, "
    "whatever the model is, under the assumptions listed in the report."
)
DOES_NOT_MEAN = (
    "It is not the probability that the model was not trained on the data.",
    "It says nothing about documents other than the canaries' carriers, nor how much of the "
    "owner's data was used, nor who trained the model.",
    "It holds only if the canaries stayed secret until they were planted and the model was "
    "trained after they were published; the timeline below shows what the records prove about "
    "those times, and every step marked open is not proven.",
    "Secondary tests and null controls carry no claim: the pre-registered primary test does.",
)


@dataclass(frozen=True)
class PdfInput:
    """Everything the PDF shows; all of it is also in the bundle as data."""

    title: str
    created: str
    author: str
    runs: tuple[tuple[str, Report, str], ...]  # (run name, report, report.html text)
    members: tuple[Member, ...]  # every member but the PDF itself
    custody: tuple[CustodyRecord, ...]
    signer_fingerprint: str
    report_digests: tuple[tuple[str, str], ...]  # (member name, sha256) of each report.json
    #: (commitment, protocol steps as checked at packing, with the secret when revealed)
    protocol: tuple[tuple[str, tuple[dict, ...]], ...] = ()


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]],
           widths: tuple[int, ...] = ()) -> str:
    cols = "".join(f"<col style='width:{w}%'>" for w in widths)
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    fixed = " style='table-layout:fixed'" if widths else ""
    return f"<table{fixed}>{cols}<tr>{head}</tr>{body}</table>"


def _when(iso: str) -> str:
    """ISO 8601 UTC as people read it: date, time to the millisecond at most, no offset."""
    return iso.replace("T", " ").replace("+00:00", "")[:23]


def _claim(run: str, a: AuditResult) -> str:
    fp = a.model.fingerprint
    ident = identity_digest(fp) or "not computable (see appendix)"
    rev = f", revision {fp['revision']}" if fp.get("revision") else ""
    n_cf = sum(i.role == "counterfactual" for i in a.items)
    return (
        f"<h3>{escape(a.title)}</h3>"
        f"<p><b>What was tested.</b> Whether the model <code>{escape(a.model.spec)}</code> "
        f"(identity <span class=hash>{escape(ident)}</span>{escape(rev)}: weights and "
        "tokenizer digests in the appendix) was trained on "
        f"{a.canary_set.count} secret canaries of the canary set committed as "
        f"<span class=hash>{escape(a.canary_set.commitment)}</span>, by ranking them among "
        f"{n_cf} counterfactuals drawn the same way and never published (run "
        f"<code>{escape(run)}</code>).</p>"
        f"<p><b>Null hypothesis.</b> {escape(null_hypothesis(a))}</p>"
        f"<p><b>Result.</b> {escape(p_label(a.primary.result))}. {escape(verdict(a))}</p>"
    )


def summary_page(data: PdfInput) -> str:
    """Page 1: what was tested, the null hypothesis, the p-value, what it means and does not."""
    claims = [(run, a) for run, rep, _ in data.runs for a in rep.audits if a.role == "audit"]
    controls = [(run, a) for run, rep, _ in data.runs for a in rep.audits if a.role != "audit"]
    parts = [
        f"<h1 class=doctitle>{escape(data.title)}</h1>",
        f"<p class=small>Expert report generated {escape(data.created)} by tdp-harness from the "
        f"evidence bundle it accompanies; signed by key "
        f"<span class=hash>{escape(data.signer_fingerprint)}</span>.</p>",
        "<div class=plain><h2>Summary in plain words</h2>",
        *(_claim(run, a) for run, a in claims),
        f"<p><b>What the p-value means.</b> {escape(MEANS)}</p>",
        "<p><b>What it does not mean.</b></p><ul>"
        + "".join(f"<li>{escape(s)}</li>" for s in DOES_NOT_MEAN) + "</ul>",
    ]
    if controls:
        rows = [(escape(a.title), escape(a.role), escape(p_label(a.primary.result)))
                for _, a in controls]
        parts.append("<p><b>Controls</b> (expected not to reject: a model that never saw the "
                     "canaries, or canaries that were never planted):</p>"
                     + _table(("audit", "role", "primary p"), rows))
    parts.append("<p><b>How to check this.</b> <code>tdp evidence verify CASE.tdp.zip --signer "
                 f"{escape(data.signer_fingerprint)}</code> checks the signature, every file's "
                 "hash, the chain of custody, and recomputes every claim; add <code>--model "
                 "SPEC</code> to re-score with the model itself.</p></div>")
    return "<section class=page>" + "\n".join(parts) + "</section>"


def timeline_rows(data: PdfInput) -> list[tuple[str, str, str, str]]:
    """(time, event, status, evidence) from the canary files' protocol steps, the audits, and
    the custody records, in time order."""
    rows: dict[tuple[str, str], tuple[str, str, str, str]] = {}
    packed = dict(data.protocol)
    for _, rep, _ in data.runs:
        for a in rep.audits:
            for s in packed.get(a.canary_set.commitment, a.canary_set.protocol):
                key = (s["name"], a.canary_set.commitment)
                rows[key] = (s.get("time") or "", f"{s['name']} ({a.canary_set.commitment[:12]}…)",
                             s["verdict"], s["detail"])
            rows[("audit", a.title)] = (a.started, f"audit: {a.title}", "ok",
                                        f"{a.task} on {a.model.spec}; finished {_when(a.finished)}")
    for r in data.custody:
        rows[("custody", r.id)] = (r.started, f"command: {r.command}", r.status,
                                   f"{r.user}@{r.host}; {len(r.inputs)} files read, "
                                   f"{len(r.outputs)} written; finished {_when(r.finished)}")
    rows[("pack", "")] = (data.created, "bundle packed and signed", "ok",
                          f"key {data.signer_fingerprint}")
    return sorted(rows.values(), key=lambda r: (r[0] == "", r[0]))


def timeline_page(data: PdfInput) -> str:
    rows = [(escape(_when(t)), escape(e), escape(v), escape(d)) for t, e, v, d in
            timeline_rows(data)]
    return ("<section class=page><h1>Protocol timeline</h1><p>Each step of the protocol as its "
            "records show it, the audits, and every <code>tdp</code> command of the chain of "
            "custody. A step marked open is not proven by a record.</p>"
            + _table(("time (UTC)", "event", "status", "evidence"), rows, (18, 21, 8, 53))
            + "</section>")


def appendix(data: PdfInput) -> str:
    rows = [(escape(m.name), escape(m.kind), f"<span class=hash>{m.sha256}</span>", str(m.size))
            for m in data.members]
    models = {}
    for _, rep, _ in data.runs:
        for a in rep.audits:
            for info in (a.model, a.reference):
                if info is not None:
                    fp = info.fingerprint
                    models[info.spec] = (escape(info.spec), *(
                        f"<span class=hash>{escape(str(v))}</span>" for v in (
                            identity_digest(fp), fp.get("weights_sha256"),
                            fp.get("tokenizer_sha256"), fp.get("revision"))))
    commitments = {(a.canary_set.commitment, a.canary_set.path) for _, r, _ in data.runs
                   for a in r.audits}
    return (
        "<section><h1>Appendix: hashes</h1><p>Signing key (sha256 of the raw Ed25519 public "
        f"key): <span class=hash>{escape(data.signer_fingerprint)}</span></p><h2>Models</h2>"
        + _table(("spec", "identity digest", "weights sha256", "tokenizer sha256", "revision"),
                 list(models.values()), (24, 22, 22, 22, 10))
        + "<h2>Canary-set commitments</h2>"
        + _table(("commitment", "canary file as recorded"), [
            (f"<span class=hash>{c}</span>", escape(p)) for c, p in sorted(commitments)])
        + "<h2>Members of the bundle</h2><p>sha256 of every member (this PDF cannot list its "
        "own: manifest.json does, and the signature covers it).</p>"
        + _table(("member", "kind", "sha256", "bytes"), rows, (34, 12, 40, 14)) + "</section>")


def _report_body(html: str) -> tuple[str, str]:
    """(css, body) of a report.html produced by harness.report.html."""
    css = re.search(r"<style>(.*?)</style>", html, re.S)
    body = re.search(r"<body>(.*)</body>", html, re.S)
    return (css.group(1) if css else ""), (body.group(1) if body else escape(html))


def pdf_html(data: PdfInput) -> str:
    css = _report_body(data.runs[0][2])[0] if data.runs else ""
    runs = "".join(f"<section class=page>{_report_body(html)[1]}</section>"
                   for _, _, html in data.runs)
    sources = ";".join(f"{n}={d}" for n, d in data.report_digests)
    keywords = ", ".join(sorted({a.canary_set.commitment for _, r, _ in data.runs
                                 for a in r.audits}))
    from harness import __version__

    head = (
        f"<meta charset=utf-8><title>{escape(data.title)}</title>"
        f"<meta name=author content='{escape(data.author)}'>"
        f"<meta name=description content='Expert report: training-data proof, evidence bundle "
        f"signed by key {data.signer_fingerprint}'>"
        f"<meta name=keywords content='{escape(keywords)}'>"
        f"<meta name=generator content='tdp-harness {escape(__version__)}'>"
        f"<meta name=dcterms.created content='{escape(data.created)}'>"
        f"<meta name={SOURCES_KEY} content='{escape(sources)}'>"
        f"<style>{css}{PRINT_CSS}</style>"
    )
    return (f"<!doctype html><html lang=en><head>{head}</head><body>" + summary_page(data)
            + timeline_page(data) + runs + appendix(data) + "</body></html>")


class PdfError(RuntimeError):
    """The PDF cannot be rendered or read (WeasyPrint or pypdf missing, or a broken file)."""


def render_pdf(data: PdfInput) -> bytes:
    """The PDF bytes (WeasyPrint)."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as e:  # OSError: Pango missing
        raise PdfError(f"the PDF needs WeasyPrint (pip install 'tdp-harness[evidence]'): {e}; "
                       "or pack with --no-pdf") from None
    return HTML(string=pdf_html(data)).write_pdf(custom_metadata=True)


@dataclass(frozen=True)
class PdfFacts:
    pages: int
    sources: dict[str, str]  # report.json member name -> sha256, from the metadata
    title: str


def read_pdf(data: bytes) -> PdfFacts:
    """Page count and the source digests recorded in a PDF's metadata (pypdf)."""
    import io

    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as e:
        raise PdfError(f"reading the PDF needs pypdf (pip install 'tdp-harness[evidence]'): "
                       f"{e}") from None
    try:
        reader = PdfReader(io.BytesIO(data))
        meta = reader.metadata or {}
        pages = len(reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as e:
        raise PdfError(f"not a readable PDF ({e})") from None
    raw = str(meta.get("/" + SOURCES_KEY, ""))
    sources = dict(p.split("=", 1) for p in raw.split(";") if "=" in p)
    return PdfFacts(pages, sources, str(meta.get("/Title", "")))
