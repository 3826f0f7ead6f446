"""Hostile input and faults in `tdp canaries embed`: one test per class of issue 14 (HTML side).

Pages come from tests/hostile_pages.py (generated, never committed). Kills are real SIGKILLs
sent by a forked child to itself at the N-th file-system call of a chosen kind.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import shutil
import signal
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from canaries.canary_set import Plan, load_canary_set, new_canary_set, save_canary_set
from canaries.commit import clean_beside, recover
from canaries.embed import TooFewPages, embed_pages, load_manifest, manifest_path_for
from canaries.files import OutputError, remove_path
from canaries.generators import words_spec
from canaries.html import CARRIERS, HtmlEmbedError, Point
from canaries.pagetree import name_parts, record_name, scan_tree
from canaries.splice import embed_in_page
from harness.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from hostile_pages import PAGE_KINDS, prose, write_corpus  # noqa: E402

SEED = b"\x07" * 16
CANARY = "alpha bravo charlie delta echo"


def canaries(tmp: Path, k: int = 3, name: str = "c.json") -> Path:
    cs, s = new_canary_set(words_spec(8), k, Plan(counterfactuals=50), seed=b"h" * 32)
    return save_canary_set(cs, tmp / name, s)


def embed(pages: Path, cfile: Path, out: Path, **kw):
    carriers = kw.pop("carriers", ["font-size-0", "comment"])
    return embed_pages(pages, load_canary_set(cfile), cfile, carriers, out, seed=SEED, **kw)


def output_bytes(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())


@pytest.fixture
def corpus(tmp_path: Path):
    return write_corpus(tmp_path / "pages", 2 * len(PAGE_KINDS), seed=3)


# 1. links and special files ----------------------------------------------------------------


def test_links_out_of_the_tree_are_never_read(tmp_path: Path, corpus) -> None:
    m = embed(corpus.root, canaries(tmp_path), tmp_path / "out")
    assert corpus.sentinel.encode() not in output_bytes(tmp_path / "out")
    errors = dict(m.errors)
    for rel, trap in corpus.traps.items():
        name = record_name(tuple(os.fsdecode(p) for p in rel.split(b"/")))
        if trap.startswith("link"):
            assert "symbolic link" in errors[name], (name, errors.get(name))
            assert not os.path.lexists(tmp_path / "out" / os.fsdecode(rel))
    assert not any(os.path.islink(p) for p in (tmp_path / "out").rglob("*"))


def test_links_inside_are_followed_only_when_asked(tmp_path: Path, corpus) -> None:
    m = embed(corpus.root, canaries(tmp_path), tmp_path / "out", follow_links_inside=True)
    errors = dict(m.errors)
    assert "traps/in.html" not in errors  # a link to a page inside the tree: read
    assert (tmp_path / "out" / "traps" / "in.html").is_file()
    assert "outside" in errors["traps/abs-out.html"] and "outside" in errors["traps/passwd.html"]
    assert "outside" in errors["traps/environ.html"]
    assert "not followed" in errors["traps/loop-a.html"]
    assert corpus.sentinel.encode() not in output_bytes(tmp_path / "out")
    assert b"PATH=" not in output_bytes(tmp_path / "out")


def test_special_files_are_refused_without_blocking(tmp_path: Path, corpus) -> None:
    m = embed(corpus.root, canaries(tmp_path), tmp_path / "out", page_timeout=5)
    errors = dict(m.errors)
    assert "fifo" in errors["traps/fifo.html"]
    if any(t == "socket" for t in corpus.traps.values()):
        assert "socket" in errors["traps/sock.html"]
    deep = [why for name, why in errors.items() if name.startswith("traps/deep/")]
    assert len(deep) == 1 and "nested over" in deep[0]


def test_modes_of_pages_and_folders_are_kept(tmp_path: Path, corpus) -> None:
    os.chmod(corpus.root / "plain", 0o750)
    m = embed(corpus.root, canaries(tmp_path), tmp_path / "out")
    out = tmp_path / "out"
    assert stat.S_IMODE((out / "traps" / "private.html").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "traps" / "group.html").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "plain").stat().st_mode) == 0o750
    assert stat.S_IMODE(manifest_path_for(tmp_path / "c.json").stat().st_mode) == 0o600
    assert m.placements


# 9. file names that are not UTF-8 -----------------------------------------------------------


def test_odd_file_names_are_recorded_reversibly(tmp_path: Path, corpus) -> None:
    m = embed(corpus.root, canaries(tmp_path, k=20), tmp_path / "out")
    text = manifest_path_for(tmp_path / "c.json").read_bytes().decode("utf-8")  # strict UTF-8
    assert "\\udc" not in text and "\n" not in json.loads(text)["untouched"][0]
    names = {p.page for p in m.placements} | set(m.untouched)
    for raw in (b"caf\xe9.html", b"\xff\xfe.html", b"new\nline.html", b"back\\x41slash.html"):
        rec = record_name(("traps", os.fsdecode(raw)))
        assert rec in names, rec
        assert name_parts(rec) == ("traps", os.fsdecode(raw))  # reversible
        assert os.path.isfile(os.path.join(bytes(tmp_path / "out"), b"traps", raw))
    assert record_name(("caf\udce9.html",)) == "caf\\xe9.html"
    assert record_name(("back\\x41slash.html",)) == "back\\\\x41slash.html"
    with pytest.raises(HtmlEmbedError, match="leaves its folder"):
        name_parts("../etc/passwd")


def test_cli_embed_with_odd_names_prints_one_line_each(tmp_path: Path, corpus) -> None:
    r = CliRunner().invoke(
        main,
        [
            "canaries",
            "embed",
            "--canaries",
            str(canaries(tmp_path)),
            "--pages",
            str(corpus.root),
            "--carrier",
            "paragraph",
            "-o",
            str(tmp_path / "out"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "skipped traps/fifo.html:" in r.output and "Traceback" not in r.output
    assert "skipped traps/new\\x0aline.html" not in r.output  # the page embeds fine


# 3. a killed run leaves nothing or everything -----------------------------------------------

_KILLABLE = ("replace", "unlink", "mkdir", "fsync", "rmdir")


def _run_killed_at(n: int | None, fn) -> int:
    """Run `fn` in a forked child that SIGKILLs itself at its n-th killable call; the number
    of killable calls made when n is None."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(r)
        calls = [0]
        try:
            for name in _KILLABLE:
                real = getattr(os, name)

                def wrapped(*a, _real=real, **k):
                    calls[0] += 1
                    if calls[0] == n:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return _real(*a, **k)

                setattr(os, name, wrapped)
            fn()
        except BaseException:
            pass
        finally:
            os.write(w, str(calls[0]).encode())
            os._exit(0)
    os.close(w)
    got = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    return int(got or b"0")


def _leftovers(*folders: Path) -> list[str]:
    return [p.name for f in folders for p in f.iterdir() if p.name.startswith(".tdp-")]


def _state(out: Path, mpath: Path) -> tuple[bytes, bytes] | None:
    if not out.exists() and not mpath.exists():
        return None
    return output_bytes(out), mpath.read_bytes()


@pytest.mark.parametrize("over_old", [False, True])
def test_kill_at_every_phase_leaves_nothing_or_everything(tmp_path: Path, over_old: bool) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(4):
        (pages / f"p{i}.html").write_text(f"<html><body><p>{prose(random.Random(i))}")
    cfile = canaries(tmp_path, k=2)
    out, mpath = tmp_path / "out", manifest_path_for(cfile)
    keep = tmp_path / "keep"
    keep.mkdir()
    if over_old:  # an earlier result, kept aside to restore before every kill
        embed(pages, cfile, out, carriers=["comment"], page_timeout=None)
        shutil.copytree(out, keep / "out")
        shutil.copy2(mpath, keep / "m.json")
    old = _state(out, mpath)

    def run() -> None:
        embed(pages, cfile, out, force=over_old, carriers=["paragraph"], page_timeout=None)

    def reset() -> None:
        remove_path(out)
        remove_path(mpath)
        if over_old:
            shutil.copytree(keep / "out", out)
            shutil.copy2(keep / "m.json", mpath)

    total = _run_killed_at(None, run)
    new = _state(out, mpath)
    assert total > 10 and new is not None and new != old
    seen = set()
    for n in range(1, total + 1):
        reset()
        _run_killed_at(n, run)
        recover(out)  # what the next run does first
        clean_beside(out, mpath)
        assert _leftovers(tmp_path) == [], n
        state = _state(out, mpath)
        assert state in (old, new), n  # nothing (or the old result) or everything
        seen.add("new" if state == new else "old")
    assert seen == {"old", "new"}
    reset()
    _run_killed_at(total - 3, run)  # killed late; the next full run cleans up first
    try:
        run()
    except OutputError as e:  # the killed run had committed: its result is not overwritten
        assert not over_old and "exists" in str(e)
    assert _leftovers(tmp_path) == [] and out.exists() and mpath.exists()


def test_pending_record_rolls_back_a_run_killed_before_its_manifest(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "a.html").write_text(f"<p>{prose(random.Random(1))}</p>")
    cfile = canaries(tmp_path, k=1)
    out, mpath = tmp_path / "out", manifest_path_for(cfile)
    calls = _run_killed_at(None, lambda: embed(pages, cfile, out))
    # find the kill point where the output is in place but the manifest is not
    for n in range(1, calls + 1):
        _run_killed_at(n, lambda: embed(pages, cfile, out))
        if out.exists() and not mpath.exists():
            break
        for p in (out, mpath):
            remove_path(p)
        for p in tmp_path.iterdir():
            if p.name.startswith(".tdp-"):
                remove_path(p)
    else:
        pytest.fail("no kill point left the output without its manifest")
    assert (tmp_path / ".tdp-pending-out.json").exists()
    embed(pages, cfile, out)  # the next run rolls back, then does the work
    assert out.exists() and mpath.exists() and _leftovers(tmp_path) == []


def test_existing_output_or_manifest_is_refused_unless_forced(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "a.html").write_text(f"<p>{prose(random.Random(2))}</p>")
    cfile = canaries(tmp_path, k=1)
    embed(pages, cfile, tmp_path / "out")
    with pytest.raises(OutputError, match="earlier embedding"):
        embed(pages, cfile, tmp_path / "out2")
    with pytest.raises(OutputError, match="exists"):
        embed(pages, cfile, tmp_path / "out", manifest=tmp_path / "m2.json")
    embed(pages, cfile, tmp_path / "out", force=True, carriers=["paragraph"])
    assert load_manifest(manifest_path_for(cfile)).placements[0].carrier == "paragraph"
    with pytest.raises(OutputError, match="overlaps"):
        embed(pages, cfile, pages / "sub", force=True)
    with pytest.raises(OutputError, match="inside"):
        embed(pages, cfile, tmp_path / "o3", manifest=pages / "m.json")


# 11. real documentation pages and naming every refused page ----------------------------------


def debian_like(i: int) -> str:
    return (
        '<!DOCTYPE html><html><head><title>Handbook</title></head><body><div class="navheader">'
        '<a href="x.html">Prev</a></div><div class="section"><div class="titlepage"><h2>'
        f'Chapter {i}</h2></div><div class="para">{prose(random.Random(i))} '
        '<span class="emphasis"><em>Note</em></span> that <code class="command">apt</code> '
        f'works. {prose(random.Random(i + 9), 2)}</div><div class="itemizedlist">'
        f'<ul><li class="listitem"><div class="para">Item. {prose(random.Random(i), 1)}'
        "</div></li></ul></div></div></body></html>"
    )


def test_div_para_documentation_pages_embed_in_their_para(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(6):
        (pages / f"ch{i}.html").write_text(debian_like(i))
    m = embed(pages, canaries(tmp_path, k=6), tmp_path / "out", carriers=["font-size-0"])
    assert len(m.placements) == 6 and not m.errors
    from resiliparse.parse.html import HTMLTree

    for p in m.placements:
        tree = HTMLTree.parse((tmp_path / "out" / p.page).read_text())
        spans = [
            s
            for s in tree.body.query_selector_all("span")
            if "font-size:0" in (s.getattr("style") or "")
        ]
        assert len(spans) == 1 and spans[0].parent.tag == "div"
        assert spans[0].parent.class_name == "para"


def test_pages_with_p_are_still_marked_in_a_p(tmp_path: Path) -> None:
    page = f"<body><div>{prose(random.Random(5))}</div><p>{prose(random.Random(6))}</p>"
    new, e = embed_in_page(page.encode(), CANARY, CARRIERS["font-size-0"], SEED)
    assert new.decode()[: e.char_offset].rfind("<p>") > new.decode()[: e.char_offset].rfind("<div>")


def test_too_few_pages_names_every_refused_page(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "ok.html").write_text(f"<p>{prose(random.Random(1))}</p>")
    for i in range(5):
        (pages / f"bad{i}.html").write_bytes(b"<p>short.</p>" if i % 2 else b"\xff\xfe")
    cfile = canaries(tmp_path, k=3)
    with pytest.raises(TooFewPages) as info:
        embed(pages, cfile, tmp_path / "out")
    assert sorted(p for p, _ in info.value.refused) == [f"bad{i}.html" for i in range(5)]
    r = CliRunner().invoke(
        main,
        [
            "canaries",
            "embed",
            "--canaries",
            str(cfile),
            "--pages",
            str(pages),
            "--carrier",
            "comment",
            "-o",
            str(tmp_path / "out"),
        ],
    )
    assert r.exit_code == 1 and "Traceback" not in r.output
    for i in range(5):
        assert f"skipped bad{i}.html: " in r.output
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


# 12. landing checked by an HTML5 parser -------------------------------------------------------

CASES = {
    # case: (page, expected) -- "lexbor": lxml accepts the placement, lexbor (HTML5) does not
    "frameset": ("<html><frameset><frame src=a></frameset><p>{p}</p></html>", "lexbor"),
    "template": ("<body><template><p>{p}</p></template>", "no <p>"),  # inert content
    "select": ("<body><select><p>{p}</select>", "no <p>"),
    "svg": ("<body><svg><desc><div>{p}</div></desc></svg>", "no <p>"),
    "table": ("<body><table><p>{p}</p><tr><td>x</td></tr></table>", "ok"),  # fostered, still a p
    "unterminated": ("<body><p>{p} <b>bold <div class='x", "ok"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_placements_an_html5_parser_disagrees_with_are_refused(case: str) -> None:
    from canaries.landing import PARSERS, _accepts

    page, expected = CASES[case]
    data = page.format(p=prose(random.Random(3))).encode()
    carrier = CARRIERS["font-size-0"]
    if expected != "ok":
        with pytest.raises(HtmlEmbedError, match=expected):
            embed_in_page(data, CANARY, carrier, SEED)
        return
    new, e = embed_in_page(data, CANARY, carrier, SEED)
    point = Point(e.char_offset, "p", "")
    for parser in PARSERS.values():  # both parsers, asked again: inside a <p>
        assert any(
            _accepts(h, carrier, point, CANARY) for h in parser(new.decode(), carrier, CANARY)
        )


def test_lxml_alone_would_accept_what_lexbor_refuses() -> None:
    from canaries.landing import PARSERS, _accepts

    carrier = CARRIERS["font-size-0"]
    text = '<html><frameset><frame src=a></frameset><p>One. <span style="font-size:0">' + CANARY
    text += " </span>Two.</p></html>"
    point = Point(0, "p", "One. ")
    verdict = {
        n: any(_accepts(h, carrier, point, CANARY) for h in f(text, carrier, CANARY))
        for n, f in PARSERS.items()
    }
    assert verdict == {"lxml": True, "lexbor": False}


def test_every_accepted_hostile_placement_lands_for_lexbor(tmp_path: Path, corpus) -> None:
    from resiliparse.parse.html import HTMLTree

    m = embed(
        corpus.root,
        canaries(tmp_path, k=40),
        tmp_path / "out",
        carriers=["font-size-0", "paragraph", "own-paragraph"],
    )
    assert len(m.placements) == 40
    texts = {c.id: c.text for c in load_canary_set(tmp_path / "c.json").canaries}
    for p in m.placements:
        page = (tmp_path / "out").joinpath(*name_parts(p.page)).read_bytes().decode()
        tree = HTMLTree.parse(page.removeprefix("\ufeff"))
        blocks = tree.body.query_selector_all("p, div, li, td, section, article, blockquote")
        assert any(texts[p.canary_id] in b.text for b in blocks), p.page


def test_scan_tree_refuses_missing_pages(tmp_path: Path) -> None:
    with pytest.raises(HtmlEmbedError, match="not found"):
        scan_tree(tmp_path / "nope")
    os.mkfifo(tmp_path / "f.html")
    with pytest.raises(HtmlEmbedError, match="fifo"):
        scan_tree(tmp_path / "f.html")


# a page over its time limit, or crashing the parser, is one page's error ---------------------


def test_a_page_over_its_time_limit_or_crashing_the_worker_is_skipped(
    tmp_path: Path, monkeypatch
) -> None:
    import canaries.embed as embed_module

    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(3):
        (pages / f"ok{i}.html").write_text(f"<p>{prose(random.Random(i))}</p>")
    # html.parser is quadratic on unclosed tags: ~3 s here, far over a 0.5 s limit
    (pages / "slow.html").write_text(f"<p>{prose(random.Random(7))}</p><p>" + "<a" * 40_000)
    (pages / "crash.html").write_text(f"<p>CRASH {prose(random.Random(8))}</p>")
    real = embed_module.embed_in_page

    def crashing(data: bytes, *args):
        if b"CRASH" in data:
            faulthandler.disable()  # pytest's handler would print a dump from the worker
            os.kill(os.getpid(), signal.SIGSEGV)  # as a C parser would
        return real(data, *args)

    monkeypatch.setattr(embed_module, "embed_in_page", crashing)  # the forked worker inherits it
    with pytest.raises(TooFewPages) as info:  # 4 canaries: every page is tried
        embed(pages, canaries(tmp_path, k=4), tmp_path / "out", page_timeout=0.5)
    errors = dict(info.value.refused)
    assert sorted(errors) == ["crash.html", "slow.html"]  # the three others each took a canary
    assert "took over 0.5 s" in errors["slow.html"]
    assert "worker process died (signal 11)" in errors["crash.html"]
