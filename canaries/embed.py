"""Embed a canary set into a batch of HTML pages and write the manifest next to the canary file.

Each canary goes into `repeat` different pages (one canary per page), pages chosen in a seeded
shuffled order among the pages that can carry one; carriers are assigned round-robin over the
canaries. A page that cannot carry a canary gets a per-page error and the batch goes on. The
output folder is built in a temporary sibling folder and renamed into place at the end, and
the manifest is written last, atomically: an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from canaries.canary_set import CanarySet
from canaries.drbg import HashDRBG
from canaries.html import (
    MAX_PAGE_BYTES,
    MIN_PARAGRAPH_CHARS,
    Carrier,
    HtmlEmbedError,
    decode_page,
    embed_in_page,
    get_carrier,
    page_seed,
)

MANIFEST_FORMAT = "tdp-embed-manifest"
HTML_SUFFIXES = (".html", ".htm", ".xhtml")


@dataclass(frozen=True)
class PagePlacement:
    """One canary copy in one page."""

    page: str  # path relative to the pages root (or the file name)
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
    format_version: int = 1

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


def list_pages(root: Path) -> list[str]:
    """HTML pages under `root` (sorted relative paths), or the single file's name."""
    if root.is_file():
        return [root.name]
    if not root.is_dir():
        raise HtmlEmbedError(f"pages not found: {root}")
    pages = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in HTML_SUFFIXES
    )
    if not pages:
        raise HtmlEmbedError(f"{root}: no .html/.htm pages")
    return pages


@dataclass
class _Batch:
    good: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    outputs: dict[str, bytes] = field(default_factory=dict)


def _read(root: Path, page: str) -> bytes:
    return root.read_bytes() if root.is_file() else (root / page).read_bytes()


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
) -> EmbedManifest:
    """Embed every canary of `cs` into `repeat` pages; write the pages to `out` and the manifest."""
    if repeat < 1:
        raise HtmlEmbedError(f"repeat must be >= 1, got {repeat}")
    if not carriers:
        raise HtmlEmbedError("name at least one carrier")
    chosen: list[Carrier] = [get_carrier(c) for c in carriers]
    root, out = Path(pages), Path(out)
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise HtmlEmbedError(f"output {out} exists and is not empty; choose a new path")
    mpath = Path(manifest) if manifest else manifest_path_for(canary_file)
    if mpath.exists():
        raise HtmlEmbedError(
            f"manifest {mpath} exists: it records an earlier embedding of these canaries; "
            "pass a new manifest path (--manifest) instead of overwriting it"
        )
    seed = secrets.token_bytes(16) if seed is None else seed
    names = list_pages(root)
    batch = _Batch()
    for page in names:  # first pass: which pages can be read at all
        try:
            decode_page(_read(root, page), max_bytes)
            batch.good.append(page)
        except (HtmlEmbedError, OSError) as e:
            batch.errors.append((page, str(e)))
    HashDRBG(seed, "embed-pages").shuffle(batch.good)
    copies = [
        (c, chosen[i % len(chosen)]) for i, c in enumerate(cs.canaries) for _ in range(repeat)
    ]
    placements: list[PagePlacement] = []
    queue = list(batch.good)
    for canary, carrier in copies:
        while queue:
            page = queue.pop(0)
            data = _read(root, page)
            try:
                new, e = embed_in_page(
                    data,
                    canary.text,
                    carrier,
                    page_seed(seed, page, canary.id, carrier.name),
                    max_bytes,
                    min_chars,
                )
            except HtmlEmbedError as err:
                batch.errors.append((page, str(err)))
                continue
            batch.outputs[page] = new
            placements.append(
                PagePlacement(
                    page,
                    canary.id,
                    carrier.name,
                    e.byte_offset,
                    e.inserted,
                    e.sha256_before,
                    e.sha256_after,
                )
            )
            break
        else:
            placed = len(placements)
            raise HtmlEmbedError(
                f"{len(copies)} canary copies ({len(cs.canaries)} canaries x repeat {repeat}) need as many "
                f"usable pages; only {placed} of {len(names)} pages could carry one "
                f"({len(batch.errors)} page errors)"
            )
    untouched = tuple(sorted(queue))
    for page in untouched:
        batch.outputs[page] = _read(root, page)
    _write_outputs(root, out, batch.outputs)
    m = EmbedManifest(
        canary_file=str(canary_file),
        canary_commitment=cs.commitment,
        pages_in=str(root),
        pages_out=str(out),
        seed=seed.hex(),
        repeat=repeat,
        carriers={c.name: c.template for c in chosen},
        placements=tuple(placements),
        errors=tuple(sorted(batch.errors)),
        untouched=untouched,
    )
    _write_json(mpath, m.to_dict())
    return m


def _write_outputs(root: Path, out: Path, outputs: dict[str, bytes]) -> None:
    if root.is_file():  # single page in, single page out
        _write_bytes(out, outputs[root.name])
        return
    tmp = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
    try:
        for page, data in outputs.items():
            target = tmp / page
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_json(path: Path, obj: Any) -> None:
    _write_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
