"""Which hidden-HTML carriers survive the text extractors and filters that build pretraining corpora.

Pages embedded by `tdp canaries embed` go through real extractors with the settings real corpora
used (FineWeb: datatrove's Trafilatura step with favour_precision=True; DCLM: resiliparse
`extract_plain_text(main_content=True)`), then through datatrove's quality filters in FineWeb's
order and FineWeb's MinHash deduplication. A canary copy survives a stage when its text occurs
verbatim in the page's document after that stage. Each manifest is one crawl: its pages are
extracted in one batch (in sorted order), so extractor-side deduplication sees them together.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from canaries.canary_set import load_canary_set
from canaries.embed import EmbedManifest, load_manifest

log = logging.getLogger(__name__)

STAGES = (
    "extracted",
    "gopher-repetition",
    "gopher-quality",
    "c4",
    "fineweb-quality",
    "minhash-dedup",
)


class SurvivalError(ValueError):
    """Survival inputs are missing or an optional extractor is not installed."""


def _require(module: str, extra: str = "html") -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise SurvivalError(
            f"{module} is not installed: pip install 'tdp-harness[{extra}]' ({e})"
        ) from None


def quiet_datatrove() -> None:
    """datatrove logs every step at INFO through loguru; keep only its errors on stderr."""
    import sys

    try:
        import datatrove.utils.logging  # noqa: F401  (adds its handler on import: import it first)
        from loguru import logger
    except ImportError:
        return
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # its warm-up call parses ""


def _trafilatura_fineweb(pages: list[tuple[str, str]], timeout: float) -> dict[str, str]:
    """datatrove's Trafilatura step exactly as examples/fineweb.py runs it (one sandbox per crawl)."""
    _require("datatrove")
    from datatrove.data import Document
    from datatrove.pipeline.extractors import Trafilatura

    step = Trafilatura(favour_precision=True, timeout=timeout)
    docs = [Document(text=html, id=pid) for pid, html in pages]
    return {d.id: d.text for d in step.run(iter(docs))}


def _per_page(fn: Callable[[str], str]) -> Callable[[list[tuple[str, str]], float], dict[str, str]]:
    def run(pages: list[tuple[str, str]], timeout: float) -> dict[str, str]:
        out = {}
        for pid, html in pages:
            try:
                out[pid] = fn(html) or ""
            except (
                Exception
            ) as e:  # an extractor crash on one page drops that page, as in a pipeline
                log.warning("extractor failed on %s: %s", pid, e)
        return out

    return run


def _resiliparse(main_content: bool) -> Callable[[str], str]:
    def fn(html: str) -> str:
        from resiliparse.extract.html2text import extract_plain_text

        return extract_plain_text(html, main_content=main_content)

    return fn


def _justext(html: str) -> str:
    import justext

    paragraphs = justext.justext(html.encode("utf-8"), justext.get_stoplist("English"))
    return "\n".join(p.text for p in paragraphs if not p.is_boilerplate)


def _html2text(html: str) -> str:
    import html2text

    return html2text.HTML2Text().handle(html)


def _bs4_get_text(html: str) -> str:
    from bs4 import BeautifulSoup

    return BeautifulSoup(html, "lxml").get_text()


@dataclass(frozen=True)
class Extractor:
    name: str
    module: str
    settings: str
    run: Callable[[list[tuple[str, str]], float], dict[str, str]]


EXTRACTORS: dict[str, Extractor] = {
    e.name: e
    for e in (
        Extractor(
            "trafilatura-fineweb",
            "trafilatura",
            "datatrove Trafilatura(favour_precision=True): extract(favor_precision=True, "
            "include_comments=False, deduplicate=True)",
            _trafilatura_fineweb,
        ),
        Extractor(
            "resiliparse-main",
            "resiliparse",
            "extract_plain_text(html, main_content=True) (DCLM)",
            _per_page(_resiliparse(True)),
        ),
        Extractor(
            "resiliparse-all",
            "resiliparse",
            "extract_plain_text(html, main_content=False)",
            _per_page(_resiliparse(False)),
        ),
        Extractor(
            "justext",
            "justext",
            "justext(html, get_stoplist('English')), non-boilerplate paragraphs",
            _per_page(_justext),
        ),
        Extractor(
            "html2text",
            "html2text",
            "HTML2Text().handle(html), defaults (body_width=78)",
            _per_page(_html2text),
        ),
        Extractor(
            "bs4-get-text",
            "bs4",
            "BeautifulSoup(html, 'lxml').get_text()",
            _per_page(_bs4_get_text),
        ),
    )
}


def _filter_steps() -> list[tuple[str, Any]]:
    """datatrove's filters with the arguments examples/fineweb.py gives them, in that order."""
    _require("datatrove")
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return [
        ("gopher-repetition", GopherRepetitionFilter()),
        ("gopher-quality", GopherQualityFilter()),
        ("c4", C4QualityFilter(filter_no_terminal_punct=False)),
        ("fineweb-quality", FineWebQualityFilter()),
    ]


def minhash_keep(docs: list[Any]) -> list[Any]:
    """FineWeb's MinHash deduplication (sha1, 64-bit, 14 buckets x 8 hashes, 5-grams) over `docs`."""
    from datatrove.pipeline.dedup import (
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets
    from datatrove.utils.hashing import HashConfig

    if len(docs) < 2:
        return list(docs)
    config = MinhashConfig(
        hash_config=HashConfig(hash_fc="sha1", precision=64),
        num_buckets=14,
        hashes_per_bucket=8,
        n_grams=5,
    )
    with tempfile.TemporaryDirectory(prefix="tdp-minhash-") as tmp:
        sigs, buckets, clusters = (f"{tmp}/{n}" for n in ("sigs", "buckets", "clusters"))
        MinhashDedupSignature(output_folder=sigs, config=config)(docs)
        for b in range(config.num_buckets):
            MinhashDedupBuckets(input_folder=sigs, output_folder=buckets, config=config)(
                None, rank=b, world_size=config.num_buckets
            )
        MinhashDedupCluster(buckets, clusters, config=config)(None)
        return list(MinhashDedupFilter(clusters)(docs))


def run_stages(extracted: dict[str, str], with_filters: bool) -> dict[str, dict[str, str]]:
    """Documents (page id -> text) left after each stage, cumulatively."""
    out = {"extracted": dict(extracted)}
    if not with_filters:
        return out
    from datatrove.data import Document

    docs = [Document(text=t, id=pid) for pid, t in sorted(extracted.items()) if t]
    for name, step in _filter_steps():
        docs = list(step.run(iter(docs)))
        out[name] = {d.id: d.text for d in docs}
    docs = minhash_keep(docs)
    out["minhash-dedup"] = {d.id: d.text for d in docs}
    return out


@dataclass(frozen=True)
class CopyOutcome:
    """One canary copy in one page, through one extractor: present after each stage?"""

    manifest: str
    page: str
    canary_id: str
    carrier: str
    extractor: str
    verbatim: tuple[bool, ...]  # per stage in STAGES order (truncated when filters were skipped)
    verbatim_ws: bool  # after extraction, with runs of whitespace collapsed to one space
    doc_kept: tuple[bool, ...]  # the page's document still exists after each stage


def _resolve(path: str, base: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() or p.exists() else base / p


def measure_manifest(
    manifest_file: str | Path,
    extractors: Iterable[str],
    with_filters: bool = True,
    timeout: float = 30.0,
    filter_extractors: Iterable[str] | None = None,
) -> list[CopyOutcome]:
    """Run every page of one embedded crawl through each extractor (and the filters)."""
    quiet_datatrove()
    mpath = Path(manifest_file)
    m: EmbedManifest = load_manifest(mpath)
    cs = load_canary_set(_resolve(m.canary_file, mpath.parent))
    texts = {c.id: c.text for c in cs.canaries}
    root = _resolve(m.pages_out, mpath.parent)
    pages = sorted({p.page for p in m.placements} | set(m.untouched))
    html = [(p, (root if root.is_file() else root / p).read_text("utf-8")) for p in pages]
    filtered = set(filter_extractors) if filter_extractors is not None else None
    outcomes = []
    for name in extractors:
        ex = EXTRACTORS[name]
        _require(ex.module)
        stages = run_stages(
            ex.run(html, timeout), with_filters and (filtered is None or name in filtered)
        )
        for p in m.placements:
            t = texts[p.canary_id]
            docs = [stages[s] for s in STAGES if s in stages]
            first = docs[0].get(p.page) or ""
            outcomes.append(
                CopyOutcome(
                    manifest=str(mpath),
                    page=p.page,
                    canary_id=p.canary_id,
                    carrier=p.carrier,
                    extractor=name,
                    verbatim=tuple(t in (d.get(p.page) or "") for d in docs),
                    verbatim_ws=t in " ".join(first.split()),
                    doc_kept=tuple(p.page in d for d in docs),
                )
            )
    return outcomes


@dataclass(frozen=True)
class Cell:
    """Survival of one carrier through one extractor up to one stage."""

    extractor: str
    carrier: str
    stage: str
    copies: int
    verbatim: int
    docs_kept: int

    @property
    def rate(self) -> float:
        return self.verbatim / self.copies if self.copies else float("nan")


def tabulate(outcomes: list[CopyOutcome]) -> list[Cell]:
    """Aggregate copy outcomes into (extractor, carrier, stage) cells."""
    cells: dict[tuple[str, str, str], list[int]] = {}
    for o in outcomes:
        for i, stage in enumerate(STAGES[: len(o.verbatim)]):
            c = cells.setdefault((o.extractor, o.carrier, stage), [0, 0, 0])
            c[0] += 1
            c[1] += o.verbatim[i]
            c[2] += o.doc_kept[i]
        c = cells.setdefault((o.extractor, o.carrier, "extracted-ws"), [0, 0, 0])
        c[0] += 1
        c[1] += o.verbatim_ws
        c[2] += o.doc_kept[0]
    return [Cell(e, c, s, *v) for (e, c, s), v in cells.items()]


def cells_to_dicts(cells: list[Cell]) -> list[dict[str, Any]]:
    return [{**asdict(c), "rate": c.rate} for c in cells]


def package_versions() -> dict[str, str]:
    """Versions of the extractor and filter packages that produced a matrix."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in (
        "datatrove",
        "trafilatura",
        "resiliparse",
        "justext",
        "html2text",
        "beautifulsoup4",
        "lxml",
        "spacy",
    ):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _pct(cell: Cell | None) -> str:
    if cell is None or not cell.copies:
        return "–"
    return f"{100 * cell.rate:.0f}%"


def render_markdown(cells: list[Cell], title: str = "Canary survival by carrier") -> str:
    """Tables: extraction (exact and whitespace-collapsed), end of the filter chain, per-stage detail."""
    idx = {(c.extractor, c.carrier, c.stage): c for c in cells}
    extractors = [e for e in EXTRACTORS if any(c.extractor == e for c in cells)]
    from canaries.html import CARRIERS

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
        "GopherRepetition -> GopherQuality -> C4 (filter_no_terminal_punct=False) -> FineWebQuality -> "
        "MinHash (FineWeb's settings). A canary is lost either because its page's document was dropped "
        "(last row) or because the text around it was removed.",
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
    return "\n".join(lines)
