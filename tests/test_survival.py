"""Survival measurement: real extractors on embedded pages; tabulation and the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from canaries.canary_set import Plan, load_canary_set, new_canary_set, save_canary_set
from canaries.embed import embed_pages, manifest_path_for
from canaries.generators import words_spec
from harness.cli import main
from harness.survival.pipeline import STAGES, CopyOutcome
from harness.survival.report import render_markdown, tabulate

pytest.importorskip("bs4")
pytest.importorskip("resiliparse")

SENTENCES = [
    "The interpreter reads each line of the program and executes it at once.",
    "A module is a file containing definitions and statements that other programs can import.",
    "When a function is called, a new local namespace is created for the names it binds.",
    "Exceptions are raised when an error occurs and can be handled by an enclosing try statement.",
    "Lists are mutable sequences, typically used to store collections of similar items.",
    "The standard library offers a wide range of facilities for everyday programming tasks.",
]


def host(i: int) -> bytes:
    paras = "\n".join(
        f"<p>{' '.join(SENTENCES[(i + k + j) % 6] for j in range(4))} Page {i}, part {k}.</p>"
        for k in range(5)
    )
    return (
        f"<!DOCTYPE html><html><head><title>Guide {i}</title></head><body>"
        f"<nav><a href='/'>Home</a></nav><main><h1>Chapter {i}</h1>\n{paras}\n</main>"
        f"<footer>Copyright</footer></body></html>"
    ).encode()


@pytest.fixture
def crawl(tmp_path: Path) -> Path:
    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(6):
        (pages / f"p{i}.html").write_bytes(host(i))
    carriers = ["paragraph", "comment", "meta", "data-attr", "display-none", "font-size-0"]
    cs, seed = new_canary_set(words_spec(8), 6, Plan(counterfactuals=50), seed=b"v" * 32)
    cfile = save_canary_set(cs, tmp_path / "c.json", seed)
    embed_pages(pages, load_canary_set(cfile), cfile, carriers, tmp_path / "out", seed=b"e" * 16)
    return manifest_path_for(cfile)


def test_extractors_see_what_they_should(crawl: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main,
        [
            "survival",
            "--manifest",
            str(crawl),
            "--no-filters",
            "--extractor",
            "bs4-get-text",
            "--extractor",
            "resiliparse-all",
            "--extractor",
            "html2text",
            "-o",
            str(tmp_path / "m"),
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "m" / "survival.json").read_text())
    rate = {
        (c["extractor"], c["carrier"]): c["rate"] for c in doc["cells"] if c["stage"] == "extracted"
    }
    for ex in ("bs4-get-text", "resiliparse-all", "html2text"):
        # markup that never renders as text never reaches the text
        assert (
            rate[(ex, "comment")] == 0 and rate[(ex, "meta")] == 0 and rate[(ex, "data-attr")] == 0
        )
    # get_text ignores styling entirely
    assert rate[("bs4-get-text", "paragraph")] == 1 and rate[("bs4-get-text", "display-none")] == 1
    assert rate[("resiliparse-all", "paragraph")] == 1
    assert "| paragraph |" in (tmp_path / "m" / "survival.md").read_text()


def test_fineweb_chain_runs_and_records_every_stage(crawl: Path) -> None:
    pytest.importorskip("datatrove")
    pytest.importorskip("spacy")
    from harness.survival.pipeline import measure_manifest

    out = measure_manifest(crawl, ["trafilatura-fineweb"], with_filters=True, timeout=60)
    assert len(out) == 6 and all(len(o.verbatim) == len(STAGES) for o in out)
    by = {o.carrier: o for o in out}
    assert by["comment"].verbatim[0] is False and by["display-none"].verbatim[0] is False
    assert by["paragraph"].verbatim[0] is True
    for o in out:  # a canary cannot reappear after a stage removed it
        assert all(a or not b for a, b in zip(o.verbatim, o.verbatim[1:], strict=False))
        assert all(k or not v for k, v in zip(o.doc_kept, o.verbatim, strict=True))


def test_tabulate_and_markdown_count_copies() -> None:
    outs = [
        CopyOutcome(
            "m", f"p{i}", f"c{i}", "font-size-0", "justext", (i < 3, i < 1), i < 3, (True, i < 2)
        )
        for i in range(4)
    ]
    cells = {(c.carrier, c.stage): c for c in tabulate(outs)}
    assert (
        cells[("font-size-0", "extracted")].verbatim == 3
        and cells[("font-size-0", "extracted")].copies == 4
    )
    assert cells[("font-size-0", "gopher-repetition")].verbatim == 1
    assert cells[("font-size-0", "gopher-repetition")].docs_kept == 2
    md = render_markdown(list(cells.values()))
    assert "| font-size-0 | 4 | 75% |" in md


def test_unknown_extractor_and_missing_manifest_are_clear(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main, ["survival", "--manifest", "nope.json", "--extractor", "magic", "-o", str(tmp_path)]
    )
    assert r.exit_code != 0 and "unknown extractor" in r.output
    r = CliRunner().invoke(
        main,
        [
            "survival",
            "--manifest",
            str(tmp_path / "nope.json"),
            "--no-filters",
            "--extractor",
            "bs4-get-text",
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 1 and "embed manifest not found" in r.output


def _survival(manifest: Path, out: Path, *extra: str):
    return CliRunner().invoke(
        main,
        [
            "survival",
            "--manifest",
            str(manifest),
            "--extractor",
            "resiliparse-all",
            "-o",
            str(out),
            *extra,
        ],
    )


def test_a_page_that_stalls_a_filter_is_stopped_and_reported(tmp_path: Path) -> None:
    pytest.importorskip("datatrove")
    pytest.importorskip("spacy")
    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(4):
        (pages / f"p{i}.html").write_bytes(host(i))
    # a long run of '<' makes datatrove's Gopher repetition filter super-linear (~6 s at 10k)
    stall = host(9).replace(b"</main>", b"<p>Symbols follow. " + b"&lt;" * 10_000 + b"</p></main>")
    (pages / "stall.html").write_bytes(stall)
    cs, seed = new_canary_set(words_spec(8), 5, Plan(counterfactuals=50), seed=b"w" * 32)
    cfile = save_canary_set(cs, tmp_path / "c.json", seed)
    embed_pages(
        pages, load_canary_set(cfile), cfile, ["paragraph"], tmp_path / "out", seed=b"e" * 16
    )
    t0 = time.monotonic()
    r = _survival(manifest_path_for(cfile), tmp_path / "m", "--doc-timeout", "1")
    assert r.exit_code == 0, r.output
    assert time.monotonic() - t0 < 30
    doc = json.loads((tmp_path / "m" / "survival.json").read_text())
    assert doc["stopped"] == [
        {
            "manifest": str(manifest_path_for(cfile)),
            "page": "stall.html",
            "extractor": "resiliparse-all",
            "stage": "gopher-repetition",
            "limit_s": 1.0,
        }
    ]
    copy = next(c for c in doc["copies"] if c["page"] == "stall.html")
    assert copy["timed_out"] == "gopher-repetition" and copy["doc_kept"][1:] == [False] * 5
    others = [c for c in doc["copies"] if c["page"] != "stall.html"]
    assert len(others) == 4 and all(c["timed_out"] == "" for c in others)
    assert (
        "| stall.html | resiliparse-all | gopher-repetition | 1 |"
        in (tmp_path / "m" / "survival.md").read_text()
    )


def test_survival_result_is_not_overwritten_unless_forced(crawl: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    assert _survival(crawl, out, "--no-filters").exit_code == 0
    (out / "mine.txt").write_text("an earlier result of mine")
    r = _survival(crawl, out, "--no-filters")
    assert r.exit_code == 1 and "exists" in r.output and "--force" in r.output
    assert (out / "mine.txt").exists()
    r = _survival(crawl, out, "--no-filters", "--force")
    assert r.exit_code == 0, r.output
    assert (out / "survival.json").exists() and not (out / "mine.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tdp")] == []


def test_trafilatura_sandbox_timeouts_are_listed_by_page(crawl: Path, monkeypatch) -> None:
    pytest.importorskip("datatrove")
    from datatrove.pipeline.extractors import Trafilatura

    from harness.survival.pipeline import measure

    real = Trafilatura.extract

    def slow_on_p3(self, text: str) -> str:  # runs in datatrove's forked sandbox
        if "Guide 3" in text:
            time.sleep(30)
        return real(self, text)

    monkeypatch.setattr(Trafilatura, "extract", slow_on_p3)
    got = measure(crawl, ["trafilatura-fineweb"], with_filters=False, timeout=1)
    assert [(s.page, s.stage, s.limit_s) for s in got.stopped] == [("p3.html", "extracted", 1)]
    for o in got.outcomes:
        assert o.doc_kept[0] == (o.page != "p3.html")
        assert o.timed_out == ("extracted" if o.page == "p3.html" else "")
