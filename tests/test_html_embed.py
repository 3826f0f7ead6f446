"""Embedding canaries in HTML: byte identity, landing checks, hostile pages, batch atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import lxml.html
import pytest
from click.testing import CliRunner

from canaries.canary_set import Plan, load_canary_set, new_canary_set, save_canary_set
from canaries.embed import embed_pages, load_manifest, manifest_path_for
from canaries.files import OutputError
from canaries.generators import words_spec
from canaries.html import CARRIERS, HtmlEmbedError, get_carrier
from canaries.splice import embed_in_page, remove_embedding
from harness.cli import main

CANARY = "alpha bravo charlie delta echo"
PROSE = (
    "Python is an easy to learn, powerful programming language. It has efficient high-level data "
    "structures and a simple but effective approach to object-oriented programming. Its elegant syntax "
    "and dynamic typing make it an ideal language for scripting."
)


def page(body: str = "", head: str = "<title>T</title>", nl: str = "\n") -> bytes:
    text = (
        f'<!DOCTYPE html>{nl}<html lang="en">{nl}<head>{head}</head>{nl}<body>{nl}'
        f'<h1>Intro &amp; more</h1>{nl}<p class="x">{PROSE} Caf\u00e9 &eacute; <code>a&lt;b</code>.</p>{nl}'
        f"{body}</body>{nl}</html>{nl}"
    )
    return text.encode("utf-8")


def seed(n: int = 0) -> bytes:
    return bytes([n]) * 16


@pytest.mark.parametrize("name", list(CARRIERS))
def test_every_carrier_splices_one_run_and_lands_where_it_says(name: str) -> None:
    original = page()
    new, e = embed_in_page(original, CANARY, CARRIERS[name], seed())
    # byte identity: the new page is the original with one contiguous insertion
    assert new[: e.byte_offset] == original[: e.byte_offset]
    assert new[e.byte_offset + len(e.inserted.encode()) :] == original[e.byte_offset :]
    assert remove_embedding(new, e) == original
    root = lxml.html.document_fromstring(new)
    if CARRIERS[name].placement == "head":
        assert root.find("head/meta").get("content") == CANARY
    elif name == "comment":
        assert any(CANARY in c.text for c in root.iter(lxml.html.etree.Comment))
    elif name == "data-attr":
        assert root.xpath("//p//span/@data-ref") == [CANARY]
    else:
        assert CANARY in root.find(".//p").text_content()


def test_paragraph_carrier_goes_after_a_sentence_end_not_inside_a_word() -> None:
    new, e = embed_in_page(page(), CANARY, CARRIERS["paragraph"], seed())
    text = new.decode()
    assert text[e.char_offset - 2 : e.char_offset] == ". "
    assert "language. " + CANARY + " It has" in text


def test_byte_identity_with_crlf_bom_and_non_ascii() -> None:
    original = b"\xef\xbb\xbf" + page(nl="\r\n")
    for name in ("font-size-0", "meta", "comment"):
        new, e = embed_in_page(original, CANARY, CARRIERS[name], seed())
        assert new.startswith(b"\xef\xbb\xbf")
        assert remove_embedding(new, e) == original
        assert new.count(b"\r\n") == original.count(b"\r\n")


def test_paragraph_choice_is_seeded() -> None:
    many = page("".join(f"<p>{PROSE} Number {i}. End of it.</p>\n" for i in range(20)))
    offsets = {
        embed_in_page(many, CANARY, CARRIERS["hidden-attr"], seed(i))[1].byte_offset
        for i in range(12)
    }
    assert len(offsets) > 3
    assert (
        embed_in_page(many, CANARY, CARRIERS["hidden-attr"], seed(1))[1]
        == embed_in_page(many, CANARY, CARRIERS["hidden-attr"], seed(1))[1]
    )


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("Caf\u00e9 <p>".encode("latin-1") + PROSE.encode(), "not UTF-8"),
        (b"   \n ", "empty"),
        # a <pre> block is not running text; a <div> without a sentence end has no safe point
        (b"<html><body><pre>" + PROSE.encode() + b"</pre></body></html>", "no <p> paragraph"),
        (b"<body><div>" + PROSE.replace(".", ",").encode() + b"</div></body>", "no <p> paragraph"),
        # markup inside script, style and comments is not a paragraph
        (
            b"<body><script>var s = '<p>" + PROSE.encode() + b"</p>';</script><style>p{}</style>"
            b"<!-- <p>" + PROSE.encode() + b"</p> --></body>",
            "no <p> paragraph",
        ),
        (b"<body><p>short. text</p></body>", "no <p> paragraph"),
    ],
)
def test_hostile_pages_get_a_clear_error(data: bytes, why: str) -> None:
    with pytest.raises(HtmlEmbedError, match=why):
        embed_in_page(data, CANARY, CARRIERS["font-size-0"], seed())


def test_huge_page_is_refused_before_parsing() -> None:
    with pytest.raises(HtmlEmbedError, match="over the limit"):
        embed_in_page(
            page("<p>x</p>" * 10_000), CANARY, CARRIERS["paragraph"], seed(), max_bytes=50_000
        )


def test_hostile_markup_never_crashes_and_never_misplaces() -> None:
    nasty = [
        b"<body><textarea><p>" + PROSE.encode() + b"</p></textarea></body>",
        b"<body>" + b"<div>" * 30_000 + b"<p>" + PROSE.encode() + b"</p></body>",
        b"<body><p>" + PROSE.encode() + b"\x00\x00 nul bytes. More</p><!-- unclosed comment",
        b"<body><p>" + PROSE.encode() + b"</p><plaintext><p>" + PROSE.encode() + b"</p></body>",
        b"<body><p title='" + b"x" * 100_000 + b"'>" + PROSE.encode() + b"</p>",
        b"<body><p>" + PROSE.encode() + b"<p>" + PROSE.encode() + b"</body>",  # unclosed <p>s
        b"<svg><p>" + PROSE.encode() + b"</p></svg><math><p>" + PROSE.encode(),
    ]
    for data in nasty:
        for name in CARRIERS:
            if CARRIERS[name].placement == "head":
                continue
            try:
                new, e = embed_in_page(data, CANARY, CARRIERS[name], seed())
            except HtmlEmbedError as err:
                assert str(err)
                continue
            assert remove_embedding(new, e) == data
            root = lxml.html.document_fromstring(new)
            inside_p = "".join(p.text_content() for p in root.iter("p"))
            if name not in ("comment", "data-attr"):
                assert CANARY in inside_p, name


def test_comment_carrier_refuses_text_that_would_break_out() -> None:
    with pytest.raises(HtmlEmbedError, match="comment"):
        embed_in_page(page(), "a -- b --> <script>", CARRIERS["comment"], seed())
    new, _ = embed_in_page(page(), 'a "b" <c> & d', CARRIERS["data-attr"], seed())
    assert lxml.html.document_fromstring(new).xpath("//span/@data-ref") == ['a "b" <c> & d']


def test_unknown_carrier_lists_the_known_ones() -> None:
    with pytest.raises(HtmlEmbedError, match="font-size-0"):
        get_carrier("invisible-ink")


@pytest.fixture
def canary_file(tmp_path: Path) -> Path:
    cs, s = new_canary_set(words_spec(6), 3, Plan(counterfactuals=50), seed=b"s" * 32)
    return save_canary_set(cs, tmp_path / "canaries.json", s)


def site(root: Path, n: int) -> Path:
    root.mkdir()
    for i in range(n):
        (root / "sub" if i % 2 else root).mkdir(exist_ok=True)
        (root / ("sub" if i % 2 else "") / f"p{i}.html").write_bytes(
            page(f"<p>Page {i}. {PROSE}</p>")
        )
    (root / "latin1.html").write_bytes("<p>Caf\u00e9. ".encode("latin-1") + PROSE.encode())
    (root / "empty.htm").write_bytes(b"")
    (root / "notes.txt").write_text("not a page")
    return root


def test_batch_embeds_skips_bad_pages_and_keeps_the_commitment(
    tmp_path: Path, canary_file: Path
) -> None:
    before = canary_file.read_bytes()
    cs = load_canary_set(canary_file)
    m = embed_pages(
        site(tmp_path / "pages", 8),
        cs,
        canary_file,
        ["font-size-0", "comment"],
        tmp_path / "out",
        repeat=2,
        seed=seed(3),
    )
    assert canary_file.read_bytes() == before
    load_canary_set(canary_file)  # commitment still valid
    assert {p for p, _ in m.errors} == {"latin1.html", "empty.htm"}
    assert len(m.placements) == 6 and len({p.page for p in m.placements}) == 6
    assert [p.carrier for p in m.placements] == ["font-size-0"] * 2 + ["comment"] * 2 + [
        "font-size-0"
    ] * 2
    assert len(m.untouched) == 2
    out_pages = sorted(
        str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.html")
    )
    assert len(out_pages) == 8
    texts = {c.id: c.text for c in cs.canaries}
    for p in m.placements:
        assert texts[p.canary_id].encode() in (tmp_path / "out" / p.page).read_bytes()
    assert load_manifest(manifest_path_for(canary_file)) == m
    with pytest.raises(OutputError, match="earlier embedding"):
        embed_pages(
            tmp_path / "pages", cs, canary_file, ["paragraph"], tmp_path / "out2", seed=seed(3)
        )
    assert not (tmp_path / "out2").exists()


def test_batch_with_too_few_pages_writes_nothing(tmp_path: Path, canary_file: Path) -> None:
    cs = load_canary_set(canary_file)
    with pytest.raises(HtmlEmbedError, match="need as many usable pages"):
        embed_pages(
            site(tmp_path / "pages", 2), cs, canary_file, ["paragraph"], tmp_path / "out", repeat=2
        )
    assert not (tmp_path / "out").exists()
    assert not manifest_path_for(canary_file).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_embed_single_page_and_errors(tmp_path: Path, canary_file: Path) -> None:
    (tmp_path / "one.html").write_bytes(page())
    cs1, s1 = new_canary_set(words_spec(6), 1, Plan(counterfactuals=50), seed=b"t" * 32)
    one = save_canary_set(cs1, tmp_path / "one.json", s1)
    r = CliRunner().invoke(
        main,
        [
            "canaries",
            "embed",
            "--canaries",
            str(one),
            "--pages",
            str(tmp_path / "one.html"),
            "--carrier",
            "meta",
            "-o",
            str(tmp_path / "o.html"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert cs1.canaries[0].text.encode() in (tmp_path / "o.html").read_bytes()
    assert json.loads(manifest_path_for(one).read_text())["placements"][0]["carrier"] == "meta"
    r = CliRunner().invoke(
        main,
        [
            "canaries",
            "embed",
            "--canaries",
            str(canary_file),
            "--pages",
            str(tmp_path / "one.html"),
            "--carrier",
            "nope",
            "-o",
            str(tmp_path / "x"),
        ],
    )
    assert r.exit_code == 1 and "unknown carrier 'nope'" in r.output
    r = CliRunner().invoke(
        main,
        [
            "canaries",
            "embed",
            "--canaries",
            str(canary_file),
            "--pages",
            str(tmp_path / "one.html"),
            "--carrier",
            "meta",
            "-o",
            str(tmp_path / "o.html"),
        ],
    )
    assert r.exit_code == 1 and "exists" in r.output
