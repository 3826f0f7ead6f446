"""Hide canaries in HTML pages through named carriers, splicing bytes so the rest stays identical.

A carrier is a fixed snippet of markup with the canary in it (a zero-size span, a comment, a
`<meta>` tag, ...). The page is tokenised with the standard library's HTML tokenizer, which
reports the source position of every tag and text run; the carrier is spliced into the
original text at one such position, so every other byte of the page is unchanged (the page is
never re-serialised).

Where a carrier goes: a text container (`<p>`, or a `div`/`section`/`article`/`main`/
`blockquote`/`li`/`dd`/`td`/`th`/`figcaption` whose own running text, inline markup included
and nested blocks excluded, has at least `min_chars` characters and a sentence end followed by
more text), just after the first sentence end in its own text. A page that has eligible `<p>`
elements is marked in one of those, so carriers stay comparable with earlier runs; other pages
(`<div class="para">` documentation, for one) in one of the other containers. lxml and lexbor
(resiliparse's HTML5 parser) then both re-parse the result and must find the canary in the
chosen container (or in `<head>`); a page where either does not, or that is huge, not UTF-8,
or has no usable container, gets a per-page error instead.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
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

# Elements whose running text can host a carrier (the text directly in them, inline markup
# included, nested blocks excluded); `<p>` is preferred when a page has one (see choose_point).
CONTAINERS = frozenset("p div section article main blockquote li dd td th figcaption".split())
# Containers before which a block of its own (`own-paragraph`) may go: flow content only.
FLOW_CONTAINERS = frozenset("p div section article main blockquote".split())
# Block-level elements: text inside one belongs to it, not to an enclosing container.
BLOCKS = CONTAINERS | frozenset(
    "address aside details dialog dl dt fieldset figure footer form h1 h2 h3 h4 h5 h6 header "
    "hgroup hr menu nav ol ul pre table caption thead tbody tfoot tr summary legend center "
    "body html head".split()
)
# Elements whose content is never rendered running text (or is not HTML): no carrier inside.
OPAQUE = frozenset(
    "textarea title select option optgroup template noscript iframe noembed noframes xmp "
    "plaintext svg math object frameset frame button".split()
)
_TRACKED = (BLOCKS | OPAQUE) - {"body", "html", "head"}
# Start tags that implicitly close an open <p> (WHATWG "close a p element" list, abridged).
_CLOSES_P = frozenset(
    "address article aside blockquote details dialog div dl fieldset figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hgroup hr main menu nav ol p pre section table ul li dd dt "
    "textarea select".split()
)
# Start tags that close an open element of the same family (no list or table between).
_CLOSES_SIBLING = {
    "li": ("li",),
    "dd": ("dd", "dt"),
    "dt": ("dd", "dt"),
    "td": ("td", "th"),
    "th": ("td", "th"),
    "tr": ("td", "th", "tr"),
}
_SCOPE = frozenset("ul ol dl table".split())
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_SENTENCE_END = re.compile(r"[.!?] +(?=\S)")
ANCHOR_CHARS = 32  # text before the insertion point that must stay beside the canary


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
    """A text container of the page (`<p>`, `<div>`, `<li>`, ...) that can host a carrier."""

    start: int  # char offset of its start tag
    insert_at: int  # char offset just after a sentence end in its own text (or after the tag)
    text_chars: int  # characters of running text directly in it (nested blocks excluded)
    tag: str = "p"
    anchor: str = ""  # the text just before insert_at, which must share the canary's container


@dataclass(frozen=True)
class PageLayout:
    """Insertion points found by the tokenizer in one page."""

    paragraphs: tuple[Paragraph, ...]
    head_insert: int | None  # char offset just after the <head> start tag


@dataclass
class _Open:
    """An open block or opaque element while scanning."""

    tag: str
    start: int
    after_tag: int
    chars: int = 0
    insert: int | None = None
    anchor: str = ""
    inline: list[str] = field(default_factory=list)  # inline elements open directly inside


class _Scanner(HTMLParser):
    """Collect text containers (with a sentence boundary in their own text) and the <head> tag.

    A tokenizer, not a tree builder: it models only the implied end tags that matter here, and
    every placement it proposes is checked afterwards by two real parsers (canaries.landing).
    """

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.paragraphs: list[Paragraph] = []
        self.head_insert: int | None = None
        self._stack: list[_Open] = []
        self._opaque = 0  # opaque elements open

    def _offset(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def _pop(self) -> None:
        el = self._stack.pop()
        if el.tag in OPAQUE:
            self._opaque -= 1
        elif el.tag in CONTAINERS and el.chars >= 1 and not self._opaque:
            if el.tag == "p" or el.insert is not None:  # other containers need a sentence end
                at = el.insert if el.insert is not None else el.after_tag
                self.paragraphs.append(Paragraph(el.start, at, el.chars, el.tag, el.anchor))

    def _close_to(self, tag: str) -> None:
        while self._stack and self._stack[-1].tag != tag:
            self._pop()
        if self._stack:
            self._pop()

    def close_all(self) -> None:
        while self._stack:
            self._pop()

    def _implied_ends(self, tag: str) -> None:
        if tag in _CLOSES_P and self._stack and self._stack[-1].tag == "p":
            self._pop()
        family = _CLOSES_SIBLING.get(tag)
        if family:
            for el in reversed(self._stack):
                if el.tag in _SCOPE:
                    break
                if el.tag in family:
                    self._close_to(el.tag)
                    break

    def handle_starttag(self, tag: str, attrs: list) -> None:
        start = self._offset()
        end = start + len(self.get_starttag_text() or "")
        if tag == "head" and self.head_insert is None:
            self.head_insert = end
        self._implied_ends(tag)
        if tag in _TRACKED:
            self._stack.append(_Open(tag, start, end))
            self._opaque += tag in OPAQUE
        elif self._stack and tag not in _VOID:
            self._stack[-1].inline.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag in ("svg", "math") or self._opaque:
            return  # self-closing is honoured in foreign content only
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("body", "html"):
            self.close_all()
        elif tag in _TRACKED:
            if any(el.tag == tag for el in self._stack):
                self._close_to(tag)
        elif self._stack and tag in self._stack[-1].inline:
            inline = self._stack[-1].inline
            while inline and inline.pop() != tag:
                pass

    def _container(self) -> _Open | None:
        el = self._stack[-1] if self._stack else None
        return el if el is not None and el.tag in CONTAINERS and not self._opaque else None

    def handle_data(self, data: str) -> None:
        el = self._container()
        if el is None or self.cdata_elem is not None:
            return
        el.chars += len(data.strip())
        if el.insert is None and not el.inline:
            m = _SENTENCE_END.search(data)
            if m:
                el.insert = self._offset() + m.end()
                el.anchor = data[max(0, m.end() - ANCHOR_CHARS) : m.end()]

    def handle_entityref(self, name: str) -> None:
        el = self._container()
        if el is not None:
            el.chars += 1

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
    scanner.close_all()
    return PageLayout(tuple(scanner.paragraphs), scanner.head_insert)


@dataclass(frozen=True)
class Point:
    """Where a carrier goes, and what must hold it once the page is parsed again."""

    at: int  # char offset
    tag: str  # "head", or the tag of the container that must hold the canary
    anchor: str = ""  # text just before `at` that must share the canary's container


def choose_point(
    layout: PageLayout, carrier: Carrier, rng: HashDRBG, min_chars: int = MIN_PARAGRAPH_CHARS
) -> Point:
    """A random text container with at least `min_chars` of running text (a `<p>` when the
    page has one, so pages with paragraphs are marked as they always were), or after <head>."""
    if carrier.placement == "head":
        if layout.head_insert is None:
            raise HtmlEmbedError("page has no <head> start tag to hold a head carrier")
        return Point(layout.head_insert, "head")
    tags = FLOW_CONTAINERS if carrier.placement == "before-paragraph" else CONTAINERS
    eligible = [p for p in layout.paragraphs if p.text_chars >= min_chars and p.tag in tags]
    eligible = [p for p in eligible if p.tag == "p"] or eligible
    if not eligible:
        raise HtmlEmbedError(
            f"page has no <p> paragraph (nor {'/'.join(sorted(tags - {'p'}))} with a sentence "
            f"end in its own text) with at least {min_chars} characters of running text"
        )
    chosen = eligible[rng.randbelow(len(eligible))]
    if carrier.placement == "before-paragraph":
        return Point(chosen.start, "p")
    return Point(chosen.insert_at, chosen.tag, chosen.anchor)


def page_seed(seed: bytes, page: str, canary_id: str, carrier: str) -> bytes:
    """The per-page seed that picks the paragraph: recomputable from the manifest."""
    return derive_seed("tdp-embed-v1", seed, page, canary_id, carrier)


__all__ = [
    "CARRIERS",
    "Carrier",
    "HtmlEmbedError",
    "get_carrier",
    "page_seed",
    "render_carrier",
    "scan_page",
]
