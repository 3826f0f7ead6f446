"""The pages folder of an embed run, listed and read without ever leaving it.

The tree is walked through directory file descriptors, each component opened with O_NOFOLLOW,
so neither a symbolic link nor a folder swapped for one can send a read outside the tree.
Links are never followed unless the caller allows links whose target stays inside the tree
(then only links to regular files). Only regular files are read: a fifo, device or socket is
refused from its `lstat` and, should one be swapped in later, is opened non-blocking and
refused from `fstat`, so it can never stall the run. File names that are not valid UTF-8 are
recorded with a reversible printable escape (`record_name` / `name_parts`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from canaries.html import HtmlEmbedError

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
MAX_DEPTH = 64  # folders nested deeper are refused (each read walks the path from the root)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_KINDS = {
    stat.S_IFIFO: "a fifo",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


def _escape_part(part: str) -> str:
    out = []
    for ch in os.fsencode(part).decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 0x20 or o == 0x7F:  # control characters would forge lines in a listing
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    return "".join(out)


def _unescape_part(text: str) -> str:
    raw, i = bytearray(), 0
    while i < len(text):
        if text.startswith("\\\\", i):
            raw += b"\\"
            i += 2
        elif text.startswith("\\x", i) and len(text) >= i + 4:
            raw.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            raw += text[i].encode("utf-8")
            i += 1
    return os.fsdecode(bytes(raw))


def record_name(parts: tuple[str, ...]) -> str:
    """A page's name as the manifest records it: printable, JSON-safe, '/'-separated, and
    reversible (bytes that are not UTF-8, control characters and '\\' become escapes)."""
    return "/".join(_escape_part(p) for p in parts)


def name_parts(name: str) -> tuple[str, ...]:
    """The path components (as the OS spells them) of a recorded page name; refuses names that
    would climb out of a folder."""
    if not name or name.startswith("/"):
        raise HtmlEmbedError(f"page name {name!r} is not a relative path")
    parts = tuple(_unescape_part(p) for p in name.split("/"))
    if any(p in ("", ".", "..") for p in parts):
        raise HtmlEmbedError(f"page name {name!r} leaves its folder")
    return parts


@dataclass(frozen=True)
class PageEntry:
    """One page found in the tree."""

    name: str  # recorded name (see record_name)
    parts: tuple[str, ...]  # the components to open under the root (a link's target if followed)
    mode: int  # permission bits, kept on the copy


@dataclass(frozen=True)
class PageTree:
    """The pages of a run (or one page), what was refused while listing, and folder modes."""

    root: Path
    single: bool  # the root is one file
    pages: tuple[PageEntry, ...]
    refused: tuple[tuple[str, str], ...]  # (recorded name, why)
    dir_modes: tuple[tuple[tuple[str, ...], int], ...]  # folder components -> permission bits


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _open_dir(root: Path, parts: tuple[str, ...]) -> int:
    fd = os.open(root, _DIR_FLAGS)
    try:
        for p in parts:
            nfd = os.open(p, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _follow_inside(root_real: str, parts: tuple[str, ...]) -> tuple[tuple[str, ...] | None, str]:
    """Components of a link's final target when it is a regular file inside the tree."""
    target = os.path.realpath(os.path.join(root_real, *parts))
    if os.path.commonpath([root_real, target]) != root_real:
        return None, "symbolic link to outside the pages folder; not followed"
    try:
        st = os.stat(target)
    except OSError as e:
        return None, f"symbolic link to a missing target ({e.strerror}); not followed"
    if not stat.S_ISREG(st.st_mode):
        return None, f"symbolic link to {_kind(st.st_mode)}; not followed"
    return tuple(Path(target).relative_to(root_real).parts), ""


def _is_page(name: str) -> bool:
    return name.lower().endswith(HTML_SUFFIXES)


def _single(root: Path) -> PageTree:
    st = root.stat()  # the user named this file: a link given on the command line is followed
    if not stat.S_ISREG(st.st_mode):
        raise HtmlEmbedError(f"{root} is {_kind(st.st_mode)}, not a page")
    entry = PageEntry(record_name((root.name,)), (), stat.S_IMODE(st.st_mode))
    return PageTree(root, True, (entry,), (), ())


def scan_tree(root: str | Path, follow_links_inside: bool = False) -> PageTree:
    """List the pages under `root` (or the one page `root` is) without leaving the tree."""
    root = Path(root)
    if not root.exists():
        raise HtmlEmbedError(f"pages not found: {root}")
    if not root.is_dir():
        return _single(root)
    root_real = os.path.realpath(root)
    pages, refused, dir_modes = [], [], []
    stack: list[tuple[str, ...]] = [()]
    while stack:
        parts = stack.pop()
        try:
            fd = _open_dir(root, parts)
        except OSError as e:
            refused.append((record_name(parts), f"folder could not be opened ({e.strerror})"))
            continue
        try:
            dir_modes.append((parts, stat.S_IMODE(os.fstat(fd).st_mode)))
            with os.scandir(fd) as it:
                entries = [(e.name, e.stat(follow_symlinks=False).st_mode) for e in it]
        except OSError as e:
            refused.append((record_name(parts), f"folder could not be read ({e.strerror})"))
            continue
        finally:
            os.close(fd)
        for name, mode in sorted(entries):
            sub = (*parts, name)
            if stat.S_ISDIR(mode) and len(sub) > MAX_DEPTH:
                why = f"folder nested over {MAX_DEPTH} levels; not read"
                refused.append((record_name(sub), why))
            elif stat.S_ISDIR(mode):
                stack.append(sub)
            elif stat.S_ISREG(mode):
                if _is_page(name):
                    pages.append(PageEntry(record_name(sub), sub, stat.S_IMODE(mode)))
            elif stat.S_ISLNK(mode):
                _link(root_real, sub, follow_links_inside, pages, refused)
            elif _is_page(name):
                refused.append((record_name(sub), f"{_kind(mode)}, not a regular file; not read"))
    if not pages and not refused:
        raise HtmlEmbedError(f"{root}: no .html/.htm pages")
    pages.sort(key=lambda p: p.name)
    return PageTree(root, False, tuple(pages), tuple(sorted(refused)), tuple(dir_modes))


def _link(root_real: str, sub: tuple[str, ...], follow: bool, pages: list, refused: list) -> None:
    """A link found in the tree: followed only when asked and when it stays inside."""
    try:
        target_is_dir = os.path.isdir(os.path.join(root_real, *sub))
    except OSError:
        target_is_dir = False
    if not (_is_page(sub[-1]) or target_is_dir):
        return  # a link to a stylesheet or an image: not a page either way
    name = record_name(sub)
    if not follow:
        refused.append((name, "symbolic link; not followed (see --follow-links-inside)"))
        return
    target, why = _follow_inside(root_real, sub)
    if target is None:
        refused.append((name, why))
        return
    st = os.stat(os.path.join(root_real, *target))
    pages.append(PageEntry(name, target, stat.S_IMODE(st.st_mode)))


def read_page(tree: PageTree, entry: PageEntry, max_bytes: int) -> bytes:
    """The bytes of one page, read without following a link out of the tree (nor blocking on a
    fifo); pages over `max_bytes` are refused from their size, before reading."""
    try:
        if tree.single:
            fd = os.open(tree.root, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        else:
            dfd = _open_dir(tree.root, entry.parts[:-1])
            try:
                fd = os.open(entry.parts[-1], _FILE_FLAGS, dir_fd=dfd)
            finally:
                os.close(dfd)
    except OSError as e:
        raise HtmlEmbedError(f"page could not be opened ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise HtmlEmbedError(f"page is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise HtmlEmbedError(f"page is {st.st_size:,} bytes, over the limit of {max_bytes:,}")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(max_bytes + 1)
    except OSError as e:
        raise HtmlEmbedError(f"page could not be read ({e.strerror})") from None
    finally:
        os.close(fd)


__all__ = [
    "HTML_SUFFIXES",
    "PageEntry",
    "PageTree",
    "name_parts",
    "read_page",
    "record_name",
    "scan_tree",
]
