"""Embed a canary set into a batch of HTML pages and write the manifest next to the canary file.

Each canary goes into `repeat` different pages (one canary per page), pages chosen in a seeded
shuffled order among the pages that can carry one; carriers are assigned round-robin over the
canaries. A page that cannot carry a canary (unreadable, a link, a fifo, not UTF-8, no usable
text container, refused by a parser, over its time limit, crashing a parser) gets a per-page
error and the batch goes on. Pages are read without leaving the pages folder
(canaries.pagetree) and embedded in a child process with a time limit per page
(canaries.sandbox). The output and the manifest appear together or not at all: the rule is in
canaries.commit. The manifest holds the canaries' text, so it is written with mode 0600;
pages keep the permission bits of the pages they copy.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from canaries.canary_set import CanarySet
from canaries.commit import (
    OutputLock,
    check_writable,
    clean_beside,
    new_tmp_output,
    publish,
    recover,
)
from canaries.drbg import HashDRBG
from canaries.files import OutputError, refuse_link, remove_path
from canaries.generators import Canary
from canaries.html import (
    MAX_PAGE_BYTES,
    MIN_PARAGRAPH_CHARS,
    Carrier,
    HtmlEmbedError,
    decode_page,
    get_carrier,
    page_seed,
)
from canaries.landing import require_parsers
from canaries.pagetree import PageEntry, PageTree, name_parts, read_page, scan_tree
from canaries.sandbox import Failed, Sandbox
from canaries.splice import embed_in_page

log = logging.getLogger(__name__)
MANIFEST_FORMAT = "tdp-embed-manifest"
PAGE_TIMEOUT = 30.0  # seconds to embed one page (a normal page takes milliseconds)


@dataclass(frozen=True)
class PagePlacement:
    """One canary copy in one page."""

    page: str  # path relative to the pages root (or the file name), see pagetree.record_name
    canary_id: str
    carrier: str
    byte_offset: int
    inserted: str
    sha256_before: str
    sha256_after: str


@dataclass(frozen=True)
class EmbedManifest:
    """Page -> canary -> carrier, kept next to the canary file and never inside it."""

    canary_file: str
    canary_commitment: str
    pages_in: str
    pages_out: str
    seed: str
    repeat: int
    carriers: dict[str, str]  # name -> template
    placements: tuple[PagePlacement, ...]
    errors: tuple[tuple[str, str], ...]  # (page, why)
    untouched: tuple[str, ...] = ()  # good pages copied unchanged (more pages than copies)
    format: str = MANIFEST_FORMAT
    format_version: int = 2  # 2: page names escaped (pagetree.record_name), mode 0600

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["errors"] = [{"page": p, "error": e} for p, e in self.errors]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbedManifest:
        if d.get("format") != MANIFEST_FORMAT:
            raise HtmlEmbedError(
                "not a tdp embed manifest (missing 'format': 'tdp-embed-manifest')"
            )
        return cls(
            **{
                **d,
                "placements": tuple(PagePlacement(**p) for p in d["placements"]),
                "errors": tuple((e["page"], e["error"]) for e in d["errors"]),
                "untouched": tuple(d.get("untouched", ())),
            }
        )


def manifest_path_for(canary_file: str | Path) -> Path:
    """Where the embed manifest of a canary file lives: `FILE.embed.json` beside it."""
    p = Path(canary_file)
    return p.with_name(p.name + ".embed.json")


def load_manifest(path: str | Path) -> EmbedManifest:
    """Read an embed manifest; a clear error if it is missing or malformed."""
    path = Path(path)
    try:
        return EmbedManifest.from_dict(json.loads(path.read_text("utf-8")))
    except FileNotFoundError:
        raise HtmlEmbedError(f"embed manifest not found: {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise HtmlEmbedError(f"{path}: malformed embed manifest ({e})") from None


class TooFewPages(HtmlEmbedError):
    """Not enough pages could carry a canary; `refused` names every page that could not."""

    def __init__(self, message: str, refused: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.refused = refused


def _embed_job(job: tuple) -> tuple:
    """Runs in the sandbox: ("ok", bytes, Embedding) or ("refused", why)."""
    try:
        return ("ok", *embed_in_page(*job))
    except HtmlEmbedError as e:
        return ("refused", str(e))


def _check_paths(root: Path, out: Path, mpath: Path) -> None:
    """Outputs never overlap the input: a rerun with --force would read or delete pages."""
    r, o, m = root.resolve(), out.resolve(), mpath.resolve()
    if root.is_dir() and (o == r or o.is_relative_to(r) or r.is_relative_to(o)):
        raise OutputError(f"output {out} overlaps the pages folder {root}; choose another path")
    if o == r:
        raise OutputError(f"output {out} is the input page itself; choose another path")
    for inside, what in ((o, "output"), (r, "pages folder")):
        if m == inside or m.is_relative_to(inside):
            raise OutputError(
                f"manifest {mpath} would sit inside the {what}; it holds the canaries: "
                "keep it apart"
            )


def _refuse_existing(out: Path, mpath: Path, force: bool) -> None:
    refuse_link(out, "output")
    refuse_link(mpath, "manifest")
    if force:
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"output {out} exists; choose a new path or pass --force")
    if mpath.exists():
        raise OutputError(
            f"manifest {mpath} exists: it records an earlier embedding of these canaries; "
            "pass a new manifest path (--manifest), or --force to replace both"
        )


def _write_page(tmp: Path, parts: tuple[str, ...], data: bytes, mode: int) -> None:
    """A page in the folder being built (ours, mode 0700), created exclusively, never via a link."""
    target = tmp.joinpath(*parts) if parts else tmp
    if parts:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        os.fchmod(f.fileno(), mode)


def _set_dir_modes(tmp: Path, tree: PageTree) -> None:
    """Folders of the copy get the permission bits of the folders they copy (deepest first)."""
    for parts, mode in sorted(tree.dir_modes, key=lambda d: -len(d[0])):
        folder = tmp.joinpath(*parts)
        if folder.is_dir() and not folder.is_symlink():
            os.chmod(folder, mode)


def embed_pages(
    pages: str | Path,
    cs: CanarySet,
    canary_file: str | Path,
    carriers: list[str],
    out: str | Path,
    repeat: int = 1,
    seed: bytes | None = None,
    max_bytes: int = MAX_PAGE_BYTES,
    min_chars: int = MIN_PARAGRAPH_CHARS,
    manifest: str | Path | None = None,
    *,
    force: bool = False,
    follow_links_inside: bool = False,
    page_timeout: float | None = PAGE_TIMEOUT,
) -> EmbedManifest:
    """Embed every canary of `cs` into `repeat` pages; put the pages at `out` and the manifest
    beside the canary file, both or neither (canaries.commit); `page_timeout` seconds per page."""
    if repeat < 1:
        raise HtmlEmbedError(f"repeat must be >= 1, got {repeat}")
    if not carriers:
        raise HtmlEmbedError("name at least one carrier")
    chosen: list[Carrier] = [get_carrier(c) for c in carriers]
    require_parsers()
    root, out = Path(pages), Path(out)
    mpath = Path(manifest) if manifest else manifest_path_for(canary_file)
    if not root.exists():
        raise HtmlEmbedError(f"pages not found: {root}")
    _check_paths(root, out, mpath)
    seed = secrets.token_bytes(16) if seed is None else seed
    with OutputLock(out):
        for line in recover(out):
            log.warning("%s", line)
        clean_beside(out, mpath)
        _refuse_existing(out, mpath, force)
        check_writable(out, "output folder")
        check_writable(mpath, "manifest folder")
        tree = scan_tree(root, follow_links_inside)
        tmp = new_tmp_output(out)
        try:
            if not tree.single:
                tmp.mkdir(mode=0o700)
            with Sandbox(_embed_job, page_timeout) as sandbox:
                batch = _Batch(tree, tmp, seed, max_bytes, min_chars, sandbox)
                m = _build(batch, cs, chosen, repeat)
            m = replace(m, canary_file=str(canary_file), pages_out=str(out))
            _set_dir_modes(tmp, tree)
            data = json.dumps(m.to_dict(), indent=1, ensure_ascii=False) + "\n"
            publish(tmp, out, mpath, data.encode("utf-8", "backslashreplace"), force)
        finally:
            if os.path.lexists(tmp):
                remove_path(tmp)
    return m


@dataclass
class _Batch:
    """One embed run in progress: where pages are read from and written to, what happened."""

    tree: PageTree
    tmp: Path
    seed: bytes
    max_bytes: int
    min_chars: int
    sandbox: Sandbox
    placements: list[PagePlacement] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def out_parts(self, entry: PageEntry) -> tuple[str, ...]:
        return () if self.tree.single else name_parts(entry.name)

    def readable(self, entry: PageEntry) -> bool:
        try:
            decode_page(read_page(self.tree, entry, self.max_bytes), self.max_bytes)
            return True
        except HtmlEmbedError as e:
            self.errors.append((entry.name, str(e)))
            return False

    def place(self, entry: PageEntry, canary: Canary, carrier: Carrier) -> bool:
        """Try one page for one canary copy; True when it now carries it (and is written)."""
        try:
            data = read_page(self.tree, entry, self.max_bytes)
        except HtmlEmbedError as e:
            self.errors.append((entry.name, str(e)))
            return False
        pseed = page_seed(self.seed, entry.name, canary.id, carrier.name)
        result = self.sandbox((data, canary.text, carrier, pseed, self.max_bytes, self.min_chars))
        if isinstance(result, Failed):
            self.errors.append((entry.name, f"embedding failed: {result.message}"))
            return False
        if result[0] == "refused":
            self.errors.append((entry.name, result[1]))
            return False
        _, new, e = result
        _write_page(self.tmp, self.out_parts(entry), new, entry.mode)
        self.placements.append(
            PagePlacement(
                entry.name,
                canary.id,
                carrier.name,
                e.byte_offset,
                e.inserted,
                e.sha256_before,
                e.sha256_after,
            )
        )
        return True

    def copy(self, entry: PageEntry) -> None:
        data = read_page(self.tree, entry, self.max_bytes)
        _write_page(self.tmp, self.out_parts(entry), data, entry.mode)


def _build(batch: _Batch, cs: CanarySet, chosen: list[Carrier], repeat: int) -> EmbedManifest:
    """Place every canary copy and write every output page under `batch.tmp`."""
    tree = batch.tree
    batch.errors.extend(tree.refused)
    good = [entry for entry in tree.pages if batch.readable(entry)]
    HashDRBG(batch.seed, "embed-pages").shuffle(good)
    copies = [
        (c, chosen[i % len(chosen)]) for i, c in enumerate(cs.canaries) for _ in range(repeat)
    ]
    queue = list(good)
    for canary, carrier in copies:
        while queue:
            if batch.place(queue.pop(0), canary, carrier):
                break
        else:
            refused = sorted(batch.errors)
            shown = "; ".join(f"{p}: {why}" for p, why in refused[:3])
            more = f"; and {len(refused) - 3} more" if len(refused) > 3 else ""
            raise TooFewPages(
                f"{len(copies)} canary copies ({len(cs.canaries)} canaries x repeat {repeat}) "
                f"need as many usable pages; only {len(batch.placements)} of "
                f"{len(tree.pages) + len(tree.refused)} pages could carry one "
                f"({len(refused)} refused: {shown}{more})",
                refused,
            )
    for entry in queue:
        batch.copy(entry)
    return EmbedManifest(
        canary_file="",
        canary_commitment=cs.commitment,
        pages_in=str(tree.root),
        pages_out="",
        seed=batch.seed.hex(),
        repeat=repeat,
        carriers={c.name: c.template for c in chosen},
        placements=tuple(batch.placements),
        errors=tuple(sorted(batch.errors)),
        untouched=tuple(sorted(e.name for e in queue)),
    )
