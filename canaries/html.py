"""Hide canaries in HTML pages through named carriers, splicing bytes so the rest stays identical.

A carrier is a fixed snippet of markup with the canary in it (a zero-size span, a comment, a
`<meta>` tag, ...). The page is tokenised with the standard library's HTML tokenizer, which
reports the source position of every tag and text run; the carrier is spliced into the
original text at one such position, so every other byte of the page is unchanged (the page is
never re-serialised). lxml then re-parses the result and confirms the canary landed where the
carrier says it should (inside the chosen paragraph, or in `<head>`); a page where it did not,
or that is huge, not UTF-8, or has no usable paragraph, gets a per-page error instead.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

from canaries.drbg import HashDRBG, derive_seed

Placement = Literal["paragraph", "before-paragraph", "head"]
MAX_PAGE_BYTES = 5_000_000
MIN_PARAGRAPH_CHARS = 120


class HtmlEmbedError(ValueError):
    """A page cannot carry a canary (the message says why); other pages are unaffected."""


@dataclass(frozen=True)
class Carrier:
    """A way to hide a canary: markup template, where it goes, and what it hides from."""

    name: str
    template: str  # `{text}` is replaced by the escaped canary
    placement: Placement
    description: str
    attribute: bool = False  # the canary sits in an attribute value (quote-escaped)
    raw: bool = False  # the canary sits in a comment: no escaping possible, unsafe text refused


CARRIERS: dict[str, Carrier] = {
    c.name: c
    for c in (
        Carrier(
            "paragraph", "{text} ", "paragraph", "visible text inside a natural paragraph (control)"
        ),
        Carrier(
            "font-size-0",
            '<span style="font-size:0">{text} </span>',
            "paragraph",
            "inline span with zero font size",
        ),
        Carrier(
            "color-transparent",
            '<span style="color:transparent">{text} </span>',
            "paragraph",
            "inline span with transparent text colour",
        ),
        Carrier(
            "offscreen",
            '<span style="position:absolute;left:-10000px;top:auto">{text} </span>',
            "paragraph",
            "inline span positioned off screen",
        ),
        Carrier(
            "clip",
            '<span style="position:absolute;width:1px;height:1px;margin:-1px;padding:0;'
            'overflow:hidden;clip:rect(0,0,0,0);white-space:nowrap;border:0">{text} </span>',
            "paragraph",
            "the 'visually hidden' clip pattern (screen-reader-only text)",
        ),
        Carrier(
            "hidden-attr",
            "<span hidden>{text} </span>",
            "paragraph",
            "span with the hidden attribute",
        ),
        Carrier(
            "aria-hidden",
            '<span aria-hidden="true">{text} </span>',
            "paragraph",
            "span with aria-hidden=true (hidden from screen readers only; still visible)",
        ),
        Carrier(
            "display-none",
            '<span style="display:none">{text} </span>',
            "paragraph",
            "span styled display:none",
        ),
        Carrier("comment", "<!-- {text} -->", "paragraph", "HTML comment", raw=True),
        Carrier(
            "data-attr",
            '<span data-ref="{text}"></span>',
            "paragraph",
            "data-* attribute of an empty span",
            attribute=True,
        ),
        Carrier("noscript", "<noscript>{text} </noscript>", "paragraph", "noscript element"),
        Carrier(
            "template",
            "<template>{text} </template>",
            "paragraph",
            "template element (inert content)",
        ),
        Carrier(
            "own-paragraph",
            "<p>{text}</p>\n",
            "before-paragraph",
            "visible paragraph of its own, just before a natural one (a repeated block)",
        ),
        Carrier(
            "meta",
            '<meta name="description" content="{text}">',
            "head",
            "meta description tag in <head>",
            attribute=True,
        ),
    )
}

# Start tags that implicitly close an open <p> (WHATWG "close a p element" list, abridged).
_CLOSES_P = frozenset(
    "address article aside blockquote details dialog div dl fieldset figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hgroup hr main menu nav ol p pre section table ul li dd dt "
    "textarea select".split()
)
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_SENTENCE_END = re.compile(r"[.!?] +(?=\S)")


def get_carrier(name: str) -> Carrier:
    """The carrier called `name`; the error lists the known ones."""
    if name not in CARRIERS:
        raise HtmlEmbedError(f"unknown carrier {name!r}; known carriers: {', '.join(CARRIERS)}")
    return CARRIERS[name]


def render_carrier(carrier: Carrier, text: str) -> str:
    """The markup that carries `text`; refuses text the carrier cannot hold unambiguously."""
    if carrier.raw:
        if "--" in text or text.startswith((">", "->")) or text.endswith("-") or "<!" in text:
            raise HtmlEmbedError(f"canary text cannot sit in an HTML comment: {text!r}")
        return carrier.template.format(text=text)
    return carrier.template.format(text=html.escape(text, quote=carrier.attribute))


@dataclass(frozen=True)
class Paragraph:
    """A `<p>` of the page: where its start tag ends, where a carrier may go, its text size."""

    start: int  # char offset of '<p'
    insert_at: int  # char offset just after a sentence end inside it (or after the start tag)
    text_chars: int


@dataclass(frozen=True)
class PageLayout:
    """Insertion points found by the tokenizer in one page."""

    paragraphs: tuple[Paragraph, ...]
    head_insert: int | None  # char offset just after the <head> start tag


class _Scanner(HTMLParser):
    """Collect <p> paragraphs (with a sentence boundary in their own text) and the <head> tag."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.paragraphs: list[Paragraph] = []
        self.head_insert: int | None = None
        self._p: dict | None = None  # the open paragraph
        self._inner: list[str] = []  # elements opened inside it

    def _offset(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def _close_p(self) -> None:
        p = self._p
        if p is not None and p["chars"] >= 1:
            self.paragraphs.append(Paragraph(p["start"], p["insert"] or p["after_tag"], p["chars"]))
        self._p, self._inner = None, []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        start = self._offset()
        end = start + len(self.get_starttag_text() or "")
        if tag == "head" and self.head_insert is None:
            self.head_insert = end
        if tag in _CLOSES_P:
            self._close_p()
        if tag == "p":
            self._p = {"start": start, "after_tag": end, "insert": None, "chars": 0}
        elif self._p is not None and tag not in _VOID:
            self._inner.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag in _CLOSES_P:
            self._close_p()

    def handle_endtag(self, tag: str) -> None:
        if self._p is None:
            return
        if tag == "p" or tag in _CLOSES_P or tag in ("body", "html"):
            self._close_p()
        elif tag in self._inner:
            while self._inner and self._inner.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        p = self._p
        if p is None or self.cdata_elem is not None:
            return
        p["chars"] += len(data.strip())
        if p["insert"] is None and not self._inner:
            m = _SENTENCE_END.search(data)
            if m:
                p["insert"] = self._offset() + m.end()

    def handle_entityref(self, name: str) -> None:
        if self._p is not None:
            self._p["chars"] += 1

    handle_charref = handle_entityref


def decode_page(data: bytes, max_bytes: int = MAX_PAGE_BYTES) -> str:
    """Strict UTF-8 text of a page, or an error saying what is wrong with its bytes."""
    if len(data) > max_bytes:
        raise HtmlEmbedError(f"page is {len(data):,} bytes, over the limit of {max_bytes:,}")
    if not data.strip():
        raise HtmlEmbedError("page is empty")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HtmlEmbedError(
            f"page is not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); convert it first"
        ) from None


def scan_page(text: str) -> PageLayout:
    """Tokenise a page and list the places a carrier can go."""
    scanner = _Scanner(text)
    try:
        scanner.feed(text)
        scanner.close()
    except (AssertionError, ValueError, RecursionError) as e:  # html.parser's own failures
        raise HtmlEmbedError(f"page could not be tokenised: {e}") from None
    scanner._close_p()
    return PageLayout(tuple(scanner.paragraphs), scanner.head_insert)


def choose_point(
    layout: PageLayout, carrier: Carrier, rng: HashDRBG, min_chars: int = MIN_PARAGRAPH_CHARS
) -> int:
    """Char offset for the carrier: a random paragraph of at least `min_chars`, or after <head>."""
    if carrier.placement == "head":
        if layout.head_insert is None:
            raise HtmlEmbedError("page has no <head> start tag to hold a head carrier")
        return layout.head_insert
    eligible = [p for p in layout.paragraphs if p.text_chars >= min_chars]
    if not eligible:
        raise HtmlEmbedError(
            f"page has no <p> paragraph with at least {min_chars} characters of text"
        )
    chosen = eligible[rng.randbelow(len(eligible))]
    return chosen.start if carrier.placement == "before-paragraph" else chosen.insert_at


def verify_landing(new_text: str, carrier: Carrier, canary: str) -> None:
    """Re-parse with lxml and check the canary sits where the carrier puts it."""
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.document_fromstring(
            new_text.encode("utf-8"), parser=lxml.html.HTMLParser(encoding="utf-8")
        )
    except (etree.ParserError, ValueError) as e:
        raise HtmlEmbedError(f"lxml could not parse the page after embedding: {e}") from None
    needle = canary.strip()
    if carrier.raw:
        nodes = [c for c in root.iter(etree.Comment) if needle in (c.text or "")]
    elif carrier.attribute:
        attr = "content" if carrier.placement == "head" else "data-ref"
        nodes = [e for e in root.iter() if isinstance(e.tag, str) and e.get(attr) == canary]
    else:
        nodes = [
            e
            for e in root.iter()
            if isinstance(e.tag, str) and needle in ((e.text or "") + " " + (e.tail or ""))
        ]
    ancestor = "head" if carrier.placement == "head" else "p"
    for node in nodes:
        holder = node
        while holder is not None and holder.tag != ancestor:
            holder = holder.getparent()
        if holder is not None:
            return
    raise HtmlEmbedError(
        f"after embedding, lxml does not find the {carrier.name} carrier inside <{ancestor}> "
        "(the page's markup is unusual there); page skipped"
    )


@dataclass(frozen=True)
class Embedding:
    """One canary spliced into one page: enough to find it again and to undo it."""

    char_offset: int
    byte_offset: int
    inserted: str  # the carrier's markup exactly as spliced
    sha256_before: str
    sha256_after: str


def embed_in_page(
    data: bytes,
    canary: str,
    carrier: Carrier,
    seed: bytes,
    max_bytes: int = MAX_PAGE_BYTES,
    min_chars: int = MIN_PARAGRAPH_CHARS,
) -> tuple[bytes, Embedding]:
    """Pure core: the page's bytes with the carrier spliced in, and where it went."""
    text = decode_page(data, max_bytes)
    markup = render_carrier(carrier, canary)
    at = choose_point(scan_page(text), carrier, HashDRBG(seed, "embed-point"), min_chars)
    new_text = text[:at] + markup + text[at:]
    verify_landing(new_text, carrier, canary)
    out = new_text.encode("utf-8")
    return out, Embedding(
        char_offset=at,
        byte_offset=len(text[:at].encode("utf-8")),
        inserted=markup,
        sha256_before=hashlib.sha256(data).hexdigest(),
        sha256_after=hashlib.sha256(out).hexdigest(),
    )


def remove_embedding(data: bytes, e: Embedding) -> bytes:
    """Undo an embedding: the page's original bytes (checked against the recorded hash)."""
    b = e.inserted.encode("utf-8")
    if data[e.byte_offset : e.byte_offset + len(b)] != b:
        raise HtmlEmbedError("the recorded carrier is not at the recorded offset")
    out = data[: e.byte_offset] + data[e.byte_offset + len(b) :]
    if hashlib.sha256(out).hexdigest() != e.sha256_before:
        raise HtmlEmbedError("page differs from the original outside the carrier")
    return out


def page_seed(seed: bytes, page: str, canary_id: str, carrier: str) -> bytes:
    """The per-page seed that picks the paragraph: recomputable from the manifest."""
    return derive_seed("tdp-embed-v1", seed, page, canary_id, carrier)


__all__ = [
    "CARRIERS",
    "Carrier",
    "Embedding",
    "HtmlEmbedError",
    "embed_in_page",
    "get_carrier",
    "page_seed",
    "remove_embedding",
    "render_carrier",
    "scan_page",
]
