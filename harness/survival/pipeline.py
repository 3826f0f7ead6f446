"""Which hidden-HTML carriers survive the extractors and filters that build pretraining corpora.

Pages embedded by `tdp canaries embed` go through real extractors with the settings real corpora
used (FineWeb: datatrove's Trafilatura step with favour_precision=True; DCLM: resiliparse
`extract_plain_text(main_content=True)`), then through datatrove's quality filters in FineWeb's
order and FineWeb's MinHash deduplication. A canary copy survives a stage when its text occurs
verbatim in the page's document after that stage. Each manifest is one crawl: its pages are
extracted in one batch (in sorted order), so extractor-side deduplication sees them together.

Every per-page extractor and every filter runs on one document at a time in a child process
with a hard time limit per document (canaries.sandbox): datatrove's Gopher filters are
super-linear on long runs of `<` or `&` and must not stall a run. A document over the limit is
stopped, counted as dropped from that stage on, and listed in the report; trafilatura runs in
datatrove's own sandbox with its own per-page limit (`timeout`), whose timeouts are listed too.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canaries.canary_set import load_canary_set
from canaries.embed import EmbedManifest, load_manifest
from canaries.html import HtmlEmbedError
from canaries.pagetree import PageEntry, PageTree, name_parts, read_page
from canaries.sandbox import Failed, Sandbox

log = logging.getLogger(__name__)
DOC_TIMEOUT = 30.0  # seconds per document per stage; normal documents take milliseconds
MAX_PAGE_BYTES = 50_000_000

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


@dataclass(frozen=True)
class Extracted:
    """Text per page after extraction, and the pages stopped by a time limit (page -> limit)."""

    texts: dict[str, str]
    stopped: dict[str, float]


def _trafilatura_fineweb(
    pages: list[tuple[str, str]], timeout: float, doc_timeout: float | None
) -> Extracted:
    """datatrove's Trafilatura step exactly as examples/fineweb.py runs it (one sandbox per crawl);
    its own sandbox enforces `timeout` per page, and its stats say which page timed out."""
    _require("datatrove")
    from datatrove.data import Document
    from datatrove.pipeline.extractors import Trafilatura

    step = Trafilatura(favour_precision=True, timeout=timeout)
    stopped: dict[str, float] = {}

    def feed() -> Iterator[Any]:
        for pid, html in pages:
            before = step.stats["timeout"].total
            yield Document(text=html, id=pid)  # resumes once the step has finished this page
            if step.stats["timeout"].total > before:
                stopped[pid] = timeout

    texts = {d.id: d.text for d in step.run(feed())}
    return Extracted(texts, stopped)


def _per_page(fn: Callable[[str], str]) -> Callable[..., Extracted]:
    def run(pages: list[tuple[str, str]], timeout: float, doc_timeout: float | None) -> Extracted:
        texts, stopped = {}, {}
        with Sandbox(fn, doc_timeout) as sandbox:
            for pid, html in pages:
                try:
                    result = sandbox(html)
                except Exception as e:  # in-process run (no time limit): same as a failure
                    result = Failed("error", f"{type(e).__name__}: {e}", 0.0)
                if isinstance(result, Failed):
                    if result.kind == "timeout":
                        stopped[pid] = float(doc_timeout or 0)
                    # an extractor failing on one page drops that page, as in a pipeline
                    log.warning("extractor failed on %s: %s", pid, result.message)
                else:
                    texts[pid] = result or ""
        return Extracted(texts, stopped)

    return run


def _resiliparse_main(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=True)


def _resiliparse_all(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=False)


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
    extract: Callable[[list[tuple[str, str]], float, float | None], Extracted]

    def run(self, pages: list[tuple[str, str]], timeout: float) -> dict[str, str]:
        """Text per page, in this process (trusted pages: no per-page time limit)."""
        return self.extract(pages, timeout, None).texts


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
            _per_page(_resiliparse_main),
        ),
        Extractor(
            "resiliparse-all",
            "resiliparse",
            "extract_plain_text(html, main_content=False)",
            _per_page(_resiliparse_all),
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


_FILTERS: list[tuple[str, Any]] = []


def _filter_steps() -> list[tuple[str, Any]]:
    """datatrove's filters with the arguments examples/fineweb.py gives them, in that order
    (built once per process; a forked worker inherits them ready)."""
    if _FILTERS:
        return _FILTERS
    _require("datatrove")
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    _FILTERS.extend(
        [
            ("gopher-repetition", GopherRepetitionFilter()),
            ("gopher-quality", GopherQualityFilter()),
            ("c4", C4QualityFilter(filter_no_terminal_punct=False)),
            ("fineweb-quality", FineWebQualityFilter()),
        ]
    )
    return _FILTERS


def _filter_job(job: tuple[int, str, str]) -> str | None:
    """Runs in the sandbox: one filter on one document; its text if kept (C4 may edit it)."""
    from datatrove.data import Document

    i, pid, text = job
    kept = list(_filter_steps()[i][1].run(iter([Document(text=text, id=pid)])))
    return kept[0].text if kept else None


def minhash_keep(docs: list[Any]) -> list[Any]:
    """FineWeb's MinHash dedup (sha1, 64-bit, 14 buckets x 8 hashes, 5-grams) over `docs`."""
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


@dataclass(frozen=True)
class Stages:
    """Documents (page id -> text) left after each stage, cumulatively, and the pages a stage
    was stopped on (page -> stage)."""

    docs: dict[str, dict[str, str]]
    stopped: dict[str, str]


def run_stages(
    extracted: dict[str, str], with_filters: bool, doc_timeout: float | None = DOC_TIMEOUT
) -> Stages:
    """Run the filter chain one document at a time, each filter under `doc_timeout` seconds."""
    out = {"extracted": dict(extracted)}
    stopped: dict[str, str] = {}
    if not with_filters:
        return Stages(out, stopped)
    from datatrove.data import Document

    steps = _filter_steps()
    docs = {pid: t for pid, t in sorted(extracted.items()) if t}
    with Sandbox(_filter_job, doc_timeout) as sandbox:
        for i, (name, _) in enumerate(steps):
            kept = {}
            for pid, text in docs.items():
                result = sandbox((i, pid, text))
                if isinstance(result, Failed):
                    if result.kind == "timeout":
                        stopped[pid] = name
                    log.warning("%s stopped on %s: %s", name, pid, result.message)
                elif result is not None:
                    kept[pid] = result
            docs = kept
            out[name] = dict(docs)
    final = minhash_keep([Document(text=t, id=pid) for pid, t in docs.items()])
    out["minhash-dedup"] = {d.id: d.text for d in final}
    return Stages(out, stopped)


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
    timed_out: str = ""  # the stage stopped on this page by its time limit, if any


@dataclass(frozen=True)
class Stopped:
    """A page a stage was stopped on by its time limit."""

    manifest: str
    page: str
    extractor: str
    stage: str
    limit_s: float


@dataclass(frozen=True)
class Measurement:
    """Copy outcomes of one or more crawls, and the pages a stage was stopped on."""

    outcomes: list[CopyOutcome]
    stopped: list[Stopped]


def _resolve(path: str, base: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() or p.exists() else base / p


def _read_pages(root: Path, names: list[str]) -> list[tuple[str, str]]:
    """The embedded pages, read without following links and refusing names that climb out."""
    tree = PageTree(root, root.is_file(), (), (), ())
    out = []
    for name in names:
        try:
            entry = PageEntry(name, () if tree.single else name_parts(name), 0)
            out.append((name, read_page(tree, entry, MAX_PAGE_BYTES).decode("utf-8")))
        except (HtmlEmbedError, UnicodeDecodeError) as e:
            raise SurvivalError(f"{root}: page {name}: {e}") from None
    return out


def measure(
    manifest_file: str | Path,
    extractors: Iterable[str],
    with_filters: bool = True,
    timeout: float = 30.0,
    filter_extractors: Iterable[str] | None = None,
    doc_timeout: float | None = DOC_TIMEOUT,
) -> Measurement:
    """Run every page of one embedded crawl through each extractor (and the filters); each
    per-page extractor and each filter gets `doc_timeout` seconds per document (None: no limit)."""
    quiet_datatrove()
    mpath = Path(manifest_file)
    m: EmbedManifest = load_manifest(mpath)
    cs = load_canary_set(_resolve(m.canary_file, mpath.parent))
    texts = {c.id: c.text for c in cs.canaries}
    root = _resolve(m.pages_out, mpath.parent)
    html = _read_pages(root, sorted({p.page for p in m.placements} | set(m.untouched)))
    filtered = set(filter_extractors) if filter_extractors is not None else None
    outcomes, stopped = [], []
    for name in extractors:
        ex = EXTRACTORS[name]
        _require(ex.module)
        extracted = ex.extract(html, timeout, doc_timeout)
        run = run_stages(
            extracted.texts, with_filters and (filtered is None or name in filtered), doc_timeout
        )
        halted = {p: "extracted" for p in extracted.stopped} | run.stopped
        stopped += [
            Stopped(str(mpath), p, name, st, extracted.stopped.get(p, doc_timeout or 0))
            for p, st in sorted(halted.items())
        ]
        for p in m.placements:
            t = texts[p.canary_id]
            docs = [run.docs[s] for s in STAGES if s in run.docs]
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
                    timed_out=halted.get(p.page, ""),
                )
            )
    return Measurement(outcomes, stopped)


def measure_manifest(
    manifest_file: str | Path,
    extractors: Iterable[str],
    with_filters: bool = True,
    timeout: float = 30.0,
    filter_extractors: Iterable[str] | None = None,
    doc_timeout: float | None = DOC_TIMEOUT,
) -> list[CopyOutcome]:
    """The copy outcomes of `measure`."""
    return measure(
        manifest_file, extractors, with_filters, timeout, filter_extractors, doc_timeout
    ).outcomes


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
