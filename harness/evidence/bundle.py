"""The bundle file: a zip whose manifest lists every member with its sha256, in archive order.

Layout: `manifest.json` first, then the seal (`manifest.sig.json`, optionally
`manifest.tsr.json`), then the members in the manifest's order. The seal files are the only
entries the manifest does not list (they are about the manifest). Reading refuses what a zip can
smuggle: absolute or `..` names, duplicates, links, and members larger than declared.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

SCHEMA = "tdp-evidence"
VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig.json"
TIMESTAMP = "manifest.tsr.json"
SEAL = (MANIFEST, SIGNATURE, TIMESTAMP)
#: a bundle larger than this (uncompressed) is refused: bundles hold reports, not models
MAX_BUNDLE_BYTES = 4 << 30
_NAME = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


class BundleError(ValueError):
    """A bundle cannot be read or written; the message names the member and the problem."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(obj: Any) -> bytes:
    """Sorted keys, two-space indent, UTF-8, final newline: the manifest's bytes."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


@dataclass(frozen=True)
class Member:
    """One file of the bundle: its name, content hash, and where it came from."""

    name: str
    sha256: str
    size: int
    kind: str  # report, canary-file, secret, timestamp, beacon, custody-log, scores, ...
    source: str | None = None  # absolute path it was read from, on the packing machine
    derived_from: tuple[str, ...] = ()  # members it was computed from (checked on verify)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["derived_from"] = list(self.derived_from)
        return d


@dataclass(frozen=True)
class Manifest:
    """What the signature covers: the members, who packed them, and what was revealed."""

    created: str
    title: str
    pack: dict[str, Any]  # command, argv, host, user, cwd, harness_version
    signer: dict[str, Any]  # algorithm, public_key_sha256 (bound into what is signed)
    secret_revealed: bool
    members: tuple[Member, ...]
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        d = asdict(self)
        d["members"] = [m.to_dict() for m in self.members]
        d["notes"] = list(self.notes)
        return canonical({"schema": SCHEMA, "version": VERSION, **d})

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            d = json.loads(data)
            if d.get("schema") != SCHEMA or d.get("version") != VERSION:
                raise BundleError(f"{MANIFEST}: not a {SCHEMA} v{VERSION} manifest")
            members = tuple(Member(**{**m, "derived_from": tuple(m["derived_from"])})
                            for m in d["members"])
            return cls(d["created"], d["title"], d["pack"], d["signer"], d["secret_revealed"],
                       members, tuple(d.get("notes", ())), d.get("extra", {}))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError,
                TypeError) as e:
            raise BundleError(f"{MANIFEST}: malformed ({type(e).__name__}: {e})") from None

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)


def check_name(name: str) -> None:
    """Member names are relative POSIX paths of plain characters (no `..`, no absolute)."""
    if not _NAME.fullmatch(name) or any(part in (".", "..") for part in name.split("/")):
        raise BundleError(f"member name {name!r} is not a plain relative path")


def write_bundle(target: Path | BinaryIO, manifest: bytes, seal: dict[str, bytes],
                 members: dict[str, bytes], date: tuple[int, ...]) -> None:
    """Write the zip: manifest, seal files, then members in the given (manifest) order."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in [(MANIFEST, manifest), *seal.items(), *members.items()]:
            check_name(name)
            info = zipfile.ZipInfo(name, date_time=date[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o600 if name.endswith(".secret") else 0o644) << 16
            z.writestr(info, data)


@dataclass(frozen=True)
class Opened:
    """A bundle as read: entries in archive order, the manifest bytes, and read problems."""

    entries: dict[str, bytes]  # insertion order = archive order
    problems: tuple[str, ...]


def read_bundle(path: Path) -> Opened:
    """Read every entry, refusing unsafe names, links, duplicates and oversize content."""
    problems, entries = [], {}
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BundleError(f"{path}: not a readable zip file ({e})") from None
    with z:
        infos = z.infolist()
        if sum(i.file_size for i in infos) > MAX_BUNDLE_BYTES:
            raise BundleError(f"{path}: declares more than {MAX_BUNDLE_BYTES} bytes")
        for info in infos:
            name = info.filename
            try:
                check_name(name)
            except BundleError as e:
                problems.append(str(e))
                continue
            if name in entries:
                problems.append(f"member {name!r} appears twice in the archive")
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                problems.append(f"member {name!r} is a symbolic link")
                continue
            try:
                with z.open(info) as f:
                    data = f.read(info.file_size + 1)
            except (zipfile.BadZipFile, OSError, ValueError) as e:  # CRC errors included
                problems.append(f"member {name!r} cannot be read ({e})")
                continue
            if len(data) != info.file_size:
                problems.append(f"member {name!r} is not the size the archive declares")
                continue
            entries[name] = data
    return Opened(entries, tuple(problems))
