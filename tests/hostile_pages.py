"""Generate hostile HTML pages and hostile page folders (never committed: made on demand).

Page kinds (`PAGE_KINDS`) cover broken and adversarial markup; `write_corpus` also plants file
system traps: file names that are not UTF-8 (or hold control characters and backslashes),
symbolic links inside and out of the tree (to files and folders, dangling, looping), fifos, a
socket, a folder named like a page, deep folders, empty and oversized files, private modes.
Every file outside the tree holds a sentinel string, so a read outside shows up in the output.
"""

from __future__ import annotations

import os
import random
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SENTENCES = [
    "The interpreter reads each line of the program and executes it at once.",
    "A module is a file containing definitions and statements that other programs can import.",
    "When a function is called, a new local namespace is created for the names it binds.",
    "Exceptions are raised when an error occurs and can be handled by an enclosing try.",
    "Lists are mutable sequences, typically used to store collections of similar items.",
    "The standard library offers a wide range of facilities for everyday programming tasks.",
]


def prose(rng: random.Random, n: int = 4) -> str:
    """A few sentences: enough running text (>= 120 characters) to host a carrier."""
    return " ".join(rng.choice(SENTENCES) for _ in range(n))


def _doc(body: str, head: str = "<title>t</title>", nl: str = "\n") -> str:
    return f"<!DOCTYPE html>{nl}<html><head>{head}</head>{nl}<body>{nl}{body}{nl}</body></html>{nl}"


def _size(rng: random.Random, big: bool, small: int, large: int) -> int:
    return rng.randint(large // 2, large) if big else rng.randint(small // 2, small)


def _kinds() -> dict[str, Callable[[random.Random, bool], bytes]]:
    """Each kind: (rng, big) -> page bytes; `big` makes the sizes that stress time limits."""

    def enc(s: str) -> bytes:
        return s.encode("utf-8")

    k: dict[str, Callable[[random.Random, bool], bytes]] = {
        "plain": lambda r, b: enc(_doc(f"<p>{prose(r)}</p>\n<p>{prose(r)}</p>")),
        "div-para": lambda r, b: enc(
            _doc(
                f'<div class="section"><div class="para">{prose(r)} <em>{prose(r, 1)}</em> '
                f"{prose(r, 2)}</div></div>"
            )
        ),
        "list-table": lambda r, b: enc(
            _doc(f"<ul><li>{prose(r)}</li></ul><table><tr><td>{prose(r)}</td></tr></table>")
        ),
        "deep-nesting": lambda r, b: enc(
            _doc("<div>" * _size(r, b, 3000, 60000) + f"<p>{prose(r)}</p>")
        ),
        "deep-inline": lambda r, b: enc(
            _doc(f"<p>{prose(r)} " + "<b><i>" * _size(r, b, 2000, 30000) + "x</p>")
        ),
        "huge-attribute": lambda r, b: enc(
            _doc(f"<p title='{'x' * _size(r, b, 50000, 2_000_000)}'>{prose(r)}</p>")
        ),
        "nul-bytes": lambda r, b: enc(_doc(f"<p>{prose(r)}\x00\x00 {prose(r, 2)}\x00</p>")),
        "invalid-utf8": lambda r, b: enc(_doc(f"<p>{prose(r)} ")) + b"\xff\xfe\xc3(" + b"</p>",
        "surrogate-utf8": lambda r, b: enc(_doc(f"<p>{prose(r)} ")) + b"\xed\xa0\x80</p>",
        "bom": lambda r, b: b"\xef\xbb\xbf" + enc(_doc(f"<p>{prose(r)}</p>")),
        "crlf": lambda r, b: enc(_doc(f"<p>{prose(r)}\r\n{prose(r)}</p>", nl="\r\n")),
        "frameset": lambda r, b: enc(
            f"<html><head><title>f</title></head><frameset><frame src=a.html>"
            f"<noframes><p>{prose(r)}</p></noframes></frameset><p>{prose(r)}</p></html>"
        ),
        "template": lambda r, b: enc(
            _doc(f"<template><p>{prose(r)}</p></template><template><div>{prose(r)}")
        ),
        "foreign": lambda r, b: enc(
            _doc(
                f"<svg><p>{prose(r)}</p><foreignObject><p>{prose(r)}</p></foreignObject>"
                f"<desc><div>{prose(r)}</div></desc></svg><math><mi><p>{prose(r)}</p></mi>"
                f"<annotation-xml encoding='text/html'><p>{prose(r)}</p></annotation-xml></math>"
            )
        ),
        "unterminated": lambda r, b: enc(
            _doc(f"<p>{prose(r)} <b>{prose(r, 2)} <div class='x")
            + r.choice(["", "<p", "<!--", "<![CDATA[", "<script>", "</", "&am"])
        ),
        "table-foster": lambda r, b: enc(
            _doc(f"<table><p>{prose(r)}</p><tr><td>x</td></tr>{prose(r, 2)}</table>")
        ),
        "comment-cdata": lambda r, b: enc(
            _doc(
                f"<!-- <p>{prose(r)}</p> --><![CDATA[<p>{prose(r)}]]><!--> <p>{prose(r)}</p>"
                f"<!---><p>{prose(r)}</p> --!><!-- a -- b --><p>{prose(r)}</p>"
            )
        ),
        "entity-flood": lambda r, b: enc(
            _doc(
                f"<p>{prose(r)} "
                + r.choice(["&amp;", "&#x41;", "&nbsp;", "&notanentity;"])
                * _size(r, b, 20000, 400000)
                + "</p>"
            )
        ),
        "lt-run": lambda r, b: enc(_doc(f"<p>{prose(r)} " + "<" * _size(r, b, 20000, 400000))),
        "amp-run": lambda r, b: enc(_doc(f"<p>{prose(r)} " + "&" * _size(r, b, 20000, 400000))),
        "lt-tag-run": lambda r, b: enc(  # unclosed at the end: html.parser is quadratic here
            f"<html><body><p>{prose(r)}</p><p>" + "<a" * _size(r, b, 3000, 120000)
        ),
        "escaped-lt-run": lambda r, b: enc(
            _doc(f"<p>{prose(r)} " + "&lt;" * _size(r, b, 5000, 40000) + "</p>")
        ),
        "raw-text": lambda r, b: enc(
            _doc(
                f"<script>var s = '<p>{prose(r)}</p>';</script><style>/* <p>{prose(r)}</p> */"
                f"</style><textarea><p>{prose(r)}</p></textarea><title><p>{prose(r)}</title>"
                f"<xmp><p>{prose(r)}</p></xmp><noscript><p>{prose(r)}</p></noscript>"
                f"<select><option><p>{prose(r)}</select><plaintext><p>{prose(r)}"
            )
        ),
        "misnested": lambda r, b: enc(
            _doc(
                f"<p><b>{prose(r)}<p>{prose(r)}</b></i></p></div><a><p>{prose(r)}</a>"
                f"<button><p>{prose(r)}</button>"
            )
        ),
        "no-head": lambda r, b: enc(f"<p>{prose(r)}</p>"),
        "whitespace-only": lambda r, b: b" \n\t\r\n " * r.randint(0, 50),
        "control-chars": lambda r, b: enc(
            _doc(f"<p>{prose(r)} \x01\x0b\x0c\x1b\x7f {prose(r)}</p>")
        ),
        "binary": lambda r, b: bytes(r.randrange(256) for _ in range(_size(r, b, 4000, 100000))),
    }
    return k


PAGE_KINDS = _kinds()


@dataclass
class Corpus:
    """What `write_corpus` made: page kinds by file name, and the traps planted."""

    root: Path
    outside: Path
    sentinel: str
    kinds: dict[bytes, str] = field(default_factory=dict)  # path (bytes, relative) -> kind
    traps: dict[bytes, str] = field(default_factory=dict)  # path (bytes, relative) -> trap


def _write(path: bytes, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def write_corpus(
    root: Path,
    n: int,
    seed: int = 0,
    big_share: float = 0.0,
    huge_bytes: int = 200_000,
    big_rounds: int = 0,
) -> Corpus:
    """`n` generated pages of every kind under `root` plus the file system traps; files outside
    the tree (in `root`'s sibling `outside-<name>`) hold a sentinel string. The first
    `big_rounds` pages of each kind, and a `big_share` of the others, get the large sizes."""
    rng = random.Random(seed)
    outside = root.parent / f"outside-{root.name}"
    sentinel = f"SENTINEL{rng.getrandbits(64):016x}"
    root.mkdir(parents=True)
    outside.mkdir()
    corpus = Corpus(root, outside, sentinel)
    names = list(PAGE_KINDS)
    for i in range(n):
        kind = names[i % len(names)]
        big = rng.random() < big_share or i < big_rounds * len(names)
        data = PAGE_KINDS[kind](rng, big)
        rel = f"{kind}/{i:05d}.html".encode()
        os.makedirs(os.path.join(bytes(root), rel.rsplit(b"/", 1)[0]), exist_ok=True)
        _write(os.path.join(bytes(root), rel), data)
        corpus.kinds[rel] = kind
    _plant_traps(corpus, rng, huge_bytes)
    return corpus


def _plant_traps(c: Corpus, rng: random.Random, huge_bytes: int) -> None:
    root, out = bytes(c.root), bytes(c.outside)
    secret = _doc(f"<p>{c.sentinel} {prose(rng)}</p>").encode()
    _write(os.path.join(out, b"secret.html"), secret, 0o600)
    os.makedirs(os.path.join(out, b"dir"))
    _write(os.path.join(out, b"dir", b"page.html"), secret)
    t = os.path.join(root, b"traps")
    os.makedirs(t)

    def trap(name: bytes, what: str) -> bytes:
        c.traps[b"traps/" + name] = what
        return os.path.join(t, name)

    page = _doc(f"<p>{prose(rng)}</p>").encode()
    for name in (
        b"caf\xe9.html",
        b"\xff\xfe.html",
        b"new\nline.html",
        b"back\\x41slash.html",
        b"\xe2\x80\xae-rtl.html",
        b"sp ace.html",
    ):
        _write(trap(name, "odd-name"), page)
    _write(trap(b"private.html", "mode-0600"), page, 0o600)
    _write(trap(b"group.html", "mode-0640"), page, 0o640)
    _write(trap(b"empty.html", "empty"), b"")
    _write(trap(b"huge.html", "huge"), b"<p>" + b"x. " * (huge_bytes // 3 + 1))
    os.symlink(os.path.join(out, b"secret.html"), trap(b"abs-out.html", "link-out"))
    os.symlink(
        b"../../" + os.path.basename(out) + b"/secret.html", trap(b"rel-out.html", "link-out")
    )
    os.symlink(os.path.join(out, b"dir"), trap(b"dir-out", "link-out-dir"))
    os.symlink(b"/etc/passwd", trap(b"passwd.html", "link-out"))
    os.symlink(b"/proc/self/environ", trap(b"environ.html", "link-out"))
    os.symlink(b"caf\xe9.html", trap(b"in.html", "link-in"))
    os.symlink(b"nowhere.html", trap(b"dangling.html", "link-dangling"))
    os.symlink(b"loop-b.html", trap(b"loop-a.html", "link-loop"))
    os.symlink(b"loop-a.html", trap(b"loop-b.html", "link-loop"))
    os.symlink(b".", trap(b"self-dir", "link-in-dir"))
    os.mkfifo(trap(b"fifo.html", "fifo"))
    os.mkdir(trap(b"folder.html", "folder"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(trap(b"sock.html", "socket"))
    except OSError:  # path too long for AF_UNIX on some systems
        c.traps.pop(b"traps/sock.html")
    finally:
        sock.close()
    deep = trap(b"deep", "deep-folders")
    for _ in range(70):
        deep = os.path.join(deep, b"d")
    os.makedirs(deep)
    _write(os.path.join(deep, b"bottom.html"), page)


def is_special(path: bytes) -> bool:
    """A fifo, socket or device (never to be opened for reading)."""
    mode = os.lstat(path).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


__all__ = ["PAGE_KINDS", "Corpus", "prose", "write_corpus"]
