"""Check where a spliced carrier lands, with the two parsers the corpus pipelines use.

lxml (libxml2's HTML parser: what trafilatura, hence FineWeb, parses with) and lexbor (an
HTML5-conformant parser: what resiliparse, hence DCLM, parses with) disagree on broken markup
(framesets, unterminated tags, `<p>` in `<template>`, foreign content), so a placement is kept
only when both put the canary where the carrier says: in the chosen container, with the text
that preceded the insertion point, and under no element whose content is not running text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from canaries.html import BLOCKS, OPAQUE, Carrier, HtmlEmbedError, Point

_OWN_TAG = re.compile(r"^<([a-z]+)")


@dataclass(frozen=True)
class Holder:
    """A node that holds the canary, as one parser sees it."""

    ancestors: tuple[str, ...]  # tags from the node's owning element up to the root
    text_of: Callable[[int], str]  # text content of the i-th ancestor


def _squash(text: str) -> str:
    # parsers turn CR LF into LF and NUL into U+FFFD (or drop it); compare what survives both
    return " ".join(text.replace("\x00", "").replace("\ufffd", "").split())


def _accepts(h: Holder, carrier: Carrier, point: Point, canary: str) -> bool:
    tags = h.ancestors
    own = _OWN_TAG.match(carrier.template)
    first = 1 if own and tags and tags[0] == own.group(1) else 0  # the carrier's own element
    if any(t in OPAQUE for t in tags[first:]):
        return False
    if point.tag == "head":
        return "head" in tags
    block = next((i for i, t in enumerate(tags) if t in BLOCKS), None)
    if block is None or tags[block] != point.tag:
        return False
    if carrier.placement == "before-paragraph":  # its own paragraph, not merged into another
        return block == 0 and _squash(h.text_of(0)) == _squash(canary)
    return _squash(point.anchor) in _squash(h.text_of(block))


def _lxml_holders(text: str, carrier: Carrier, canary: str) -> Iterator[Holder]:
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.document_fromstring(
            text.encode("utf-8"), parser=lxml.html.HTMLParser(encoding="utf-8")
        )
    except (etree.ParserError, ValueError) as e:
        raise HtmlEmbedError(f"lxml could not parse the page after embedding: {e}") from None
    needle = canary.strip()
    owners = []
    if carrier.raw:
        owners = [c.getparent() for c in root.iter(etree.Comment) if needle in (c.text or "")]
    elif carrier.attribute:
        attr = "content" if carrier.placement == "head" else "data-ref"
        owners = [e for e in root.iter() if isinstance(e.tag, str) and e.get(attr) == canary]
    else:
        for e in root.iter():
            if not isinstance(e.tag, str):
                continue
            if needle in (e.text or ""):
                owners.append(e)
            if needle in (e.tail or ""):  # a tail is text of the parent
                owners.append(e.getparent())
    for owner in owners:
        chain = []
        while owner is not None:
            chain.append(owner)
            owner = owner.getparent()
        yield Holder(
            tuple(str(e.tag).lower() for e in chain), lambda i, c=chain: c[i].text_content()
        )


def _lexbor_nodes(root) -> Iterator:
    """Every node under `root`, in document order, without recursion (pages nest deeply)."""
    node = root.first_child
    while node is not None:
        yield node
        child = node.first_child
        if child is not None:
            node = child
            continue
        while node is not None:
            sibling = node.next_sibling
            if sibling is not None:
                node = sibling
                break
            node = node.parent
            if node is None or node.type == root.type:
                return


def _lexbor_holders(text: str, carrier: Carrier, canary: str) -> Iterator[Holder]:
    from html import escape

    from resiliparse.parse.html import HTMLTree, NodeType

    tree = HTMLTree.parse(text.removeprefix("\ufeff"))  # decoding strips a BOM (WHATWG Encoding)
    needle = canary.strip()
    escaped = escape(needle, quote=False)
    attr = "content" if carrier.placement == "head" else "data-ref"
    owners = []
    for node in _lexbor_nodes(tree.document):
        kind = node.type
        if kind == NodeType.TEXT and not carrier.raw and needle in node.text:
            owners.append(node.parent)
        elif kind == NodeType.COMMENT and carrier.raw and needle in node.text:
            owners.append(node.parent)
        elif kind == NodeType.ELEMENT:
            if carrier.attribute and node.get_attribute(attr) == canary:
                owners.append(node)
            elif node.tag == "template" and escaped in node.html:  # content is a fragment
                owners.append(node)
    for owner in owners:
        chain = []
        while owner is not None and owner.type == NodeType.ELEMENT:
            chain.append(owner)
            owner = owner.parent
        yield Holder(tuple(e.tag.lower() for e in chain), lambda i, c=chain: c[i].text)


PARSERS: dict[str, Callable[[str, Carrier, str], Iterator[Holder]]] = {
    "lxml": _lxml_holders,
    "lexbor": _lexbor_holders,
}


def check_landing(new_text: str, carrier: Carrier, canary: str, point: Point) -> None:
    """Refuse the placement unless lxml and lexbor both find the canary where it should be."""
    where = "<head>" if point.tag == "head" else f"the chosen <{point.tag}>"
    for name, holders in PARSERS.items():
        if not any(_accepts(h, carrier, point, canary) for h in holders(new_text, carrier, canary)):
            raise HtmlEmbedError(
                f"after embedding, {name} does not find the {carrier.name} carrier inside {where} "
                "(the page's markup is unusual there); page skipped"
            )


def require_parsers() -> None:
    """Fail early, for the whole batch, when the HTML5 parser is missing."""
    try:
        import resiliparse.parse.html  # noqa: F401
    except ImportError as e:
        raise HtmlEmbedError(
            f"embedding checks each page with resiliparse's HTML5 parser: pip install resiliparse "
            f"({e})"
        ) from None


__all__ = ["PARSERS", "Holder", "check_landing", "require_parsers"]
