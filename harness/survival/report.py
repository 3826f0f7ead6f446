"""The survival matrix: copy outcomes aggregated per (extractor, carrier, stage), as Markdown."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from canaries.html import CARRIERS
from harness.survival.pipeline import EXTRACTORS, STAGES, CopyOutcome


@dataclass(frozen=True)
class Cell:
    """Survival of one carrier through one extractor up to one stage."""

    extractor: str
    carrier: str
    stage: str
    copies: int
    verbatim: int
    docs_kept: int
    timed_out: int = 0  # copies whose page was stopped by the time limit at or before this stage

    @property
    def rate(self) -> float:
        return self.verbatim / self.copies if self.copies else float("nan")


def tabulate(outcomes: list[CopyOutcome]) -> list[Cell]:
    """Aggregate copy outcomes into (extractor, carrier, stage) cells."""
    cells: dict[tuple[str, str, str], list[int]] = {}
    for o in outcomes:
        stopped = STAGES.index(o.timed_out) if o.timed_out else len(STAGES)
        for i, stage in enumerate(STAGES[: len(o.verbatim)]):
            c = cells.setdefault((o.extractor, o.carrier, stage), [0, 0, 0, 0])
            c[0] += 1
            c[1] += o.verbatim[i]
            c[2] += o.doc_kept[i]
            c[3] += i >= stopped
        c = cells.setdefault((o.extractor, o.carrier, "extracted-ws"), [0, 0, 0, 0])
        c[0] += 1
        c[1] += o.verbatim_ws
        c[2] += o.doc_kept[0]
        c[3] += stopped == 0
    return [Cell(e, c, s, *v) for (e, c, s), v in cells.items()]


def cells_to_dicts(cells: list[Cell]) -> list[dict[str, Any]]:
    return [{**asdict(c), "rate": c.rate} for c in cells]


def _pct(cell: Cell | None) -> str:
    if cell is None or not cell.copies:
        return "–"
    return f"{100 * cell.rate:.0f}%"


def render_markdown(
    cells: list[Cell],
    title: str = "Canary survival by carrier",
    stopped: list[tuple[str, str, str, float]] | None = None,
) -> str:
    """Tables: extraction (exact and whitespace-collapsed), end of the filter chain, per-stage
    detail, and the pages a stage was stopped on."""
    idx = {(c.extractor, c.carrier, c.stage): c for c in cells}
    extractors = [e for e in EXTRACTORS if any(c.extractor == e for c in cells)]
    carriers = [c for c in CARRIERS if any(x.carrier == c for x in cells)]
    lines = [f"# {title}", ""]

    def table(stage: str, heading: str, note: str) -> None:
        cols = [e for e in extractors if (e, carriers[0], stage) in idx]
        if not cols:
            return
        lines.extend(
            [
                f"## {heading}",
                "",
                note,
                "",
                "| carrier | copies | " + " | ".join(cols) + " |",
                "|---|---:|" + "---:|" * len(cols),
            ]
        )
        for car in carriers:
            n = idx.get((cols[0], car, stage))
            lines.append(
                f"| {car} | {n.copies if n else 0} | "
                + " | ".join(_pct(idx.get((e, car, stage))) for e in cols)
                + " |"
            )
        kept = [idx.get((e, carriers[0], stage)) for e in cols]
        lines.append(
            "| *(page's document kept)* | | "
            + " | ".join(f"*{100 * k.docs_kept / k.copies:.0f}%*" if k else "–" for k in kept)
            + " |"
        )
        lines.append("")

    table(
        "extracted",
        "After extraction: canary verbatim in the extracted text",
        "Exact substring of the extracted text.",
    )
    table(
        "extracted-ws",
        "After extraction, whitespace collapsed",
        "Substring after collapsing every run of whitespace in the extracted text to one space "
        "(catches canaries split by line wrapping).",
    )
    table(
        "minhash-dedup",
        "After the FineWeb filter chain and MinHash dedup",
        "GopherRepetition -> GopherQuality -> C4 (filter_no_terminal_punct=False) -> "
        "FineWebQuality -> MinHash (FineWeb's settings). A canary is lost either because its "
        "page's document was dropped (last row) or because the text around it was removed.",
    )
    for e in extractors:
        stages = [s for s in STAGES if (e, carriers[0], s) in idx]
        if len(stages) < 2:
            continue
        lines.extend(
            [
                f"## Stage by stage: {e}",
                "",
                "| carrier | " + " | ".join(stages) + " |",
                "|---|" + "---:|" * len(stages),
            ]
        )
        for car in carriers:
            lines.append(
                f"| {car} | " + " | ".join(_pct(idx.get((e, car, s))) for s in stages) + " |"
            )
        kept = [idx.get((e, carriers[0], s)) for s in stages]
        lines.append(
            "| *(document kept)* | "
            + " | ".join(f"*{100 * k.docs_kept / k.copies:.0f}%*" if k else "–" for k in kept)
            + " |"
        )
        lines.append("")
    lines.extend(_stopped_section(stopped or []))
    return "\n".join(lines)


def _stopped_section(stopped: list[tuple[str, str, str, float]]) -> list[str]:
    """The pages a stage was stopped on (counted as lost from that stage on)."""
    if not stopped:
        return []
    out = [
        "## Stopped by the time limit",
        "",
        "A stage that runs past its per-document limit is stopped and the page's document counts "
        "as dropped from that stage on (every copy in it is counted as lost).",
        "",
        "| page | extractor | stage | limit (s) |",
        "|---|---|---|---:|",
    ]
    out += [f"| {p} | {e} | {s} | {lim:g} |" for p, e, s, lim in sorted(stopped)]
    return [*out, ""]
