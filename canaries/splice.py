"""Splice one carrier into one page and check where it landed: the pure core of embedding.

The page is tokenized and a point chosen by canaries.html; the carrier is inserted at that
offset without re-serialising anything, and canaries.landing checks with two parsers (lxml and
the HTML5 parser lexbor) that the canary sits where the carrier says.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from canaries.drbg import HashDRBG
from canaries.html import (
    MAX_PAGE_BYTES,
    MIN_PARAGRAPH_CHARS,
    Carrier,
    HtmlEmbedError,
    choose_point,
    decode_page,
    render_carrier,
    scan_page,
)
from canaries.landing import check_landing


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
    point = choose_point(scan_page(text), carrier, HashDRBG(seed, "embed-point"), min_chars)
    at = point.at
    new_text = text[:at] + markup + text[at:]
    check_landing(new_text, carrier, canary, point)
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


__all__ = ["Embedding", "embed_in_page", "remove_embedding"]
