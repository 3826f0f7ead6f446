"""On-disk cache of per-text token log-probs, written chunk by chunk so a killed audit resumes.

What is cached: the backend's raw per-token log-probs, not the scores. Every score function is a
pure function of (text, log-probs[, reference log-probs]), so caching log-probs lets any score,
with any options, be recomputed without touching the model again; a cache of scores would be
keyed on score names and options and would miss for every new score.

Key: (sha256 of the backend fingerprint, kind of array, sha256 of the text). The fingerprint
digest covers everything that changes the log-probs (model, revision, weights hash, tokenizer
hash, dtype, library versions, backend settings), so a changed model or setting never reads an
old entry. ``kind`` separates arrays of different meaning: ``token_logprobs``, and
``vocab_stats`` (Min-K%++'s per-position mean and variance of log p under the model, stored as
one array: the means, then the variances).

Layout::

    <root>/v1/<fingerprint digest>/fingerprint.json    the fingerprint, for humans
    <root>/v1/<fingerprint digest>/<kind>/*.chunk      one file per scored chunk

Each chunk file is written whole to a temporary name, fsynced, then atomically renamed (and the
directory fsynced), so a kill at any moment leaves either the complete chunk or nothing. A chunk
file carries the sha256 of its payload; a file that is truncated, garbled or fails that check is
reported with a :class:`CacheCorruptionWarning`, moved aside (``*.corrupt``) and its entries are
treated as missing, so they are scored again: a damaged cache costs time, never a wrong score.

Chunk file format (little-endian)::

    b"TDPCACHE1\\n"  magic (10 bytes)
    sha256(payload)  32 bytes
    payload = u32 header length | header JSON | array bytes
    header  = {"fingerprint": digest, "kind": kind,
               "entries": [[text_sha256, dtype, byte_offset, n_values], ...]}
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from canaries.files import fsync_dir


class Fingerprint(Protocol):
    """What the cache needs of a backend fingerprint (harness.backends.base.Fingerprint): a
    digest that keys its entries and a dict written beside them for people. A protocol, so the
    cache, a lower layer than the backends, imports none of them."""

    def digest(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...

MAGIC = b"TDPCACHE1\n"
FORMAT_DIR = "v1"
LOGPROBS = "token_logprobs"
VOCAB_STATS = "vocab_stats"
#: how each kind is named in notes and on stderr
KIND_NAMES = {LOGPROBS: "log-probs", VOCAB_STATS: "Min-K%++ vocab stats"}
DEFAULT_CHUNK_TEXTS = 4096
ALLOWED_DTYPES = ("<f4", "<f8", "<f2")


class CacheError(RuntimeError):
    """The cache cannot be used at all (e.g. its directory cannot be created or written)."""


class CacheCorruptionWarning(UserWarning):
    """A cache file was damaged; it was set aside and its entries will be scored again."""


def text_key(text: str) -> str:
    """sha256 of the UTF-8 text: the per-text part of the cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    """``$TDP_CACHE_DIR``, else ``$XDG_CACHE_HOME/tdp``, else ``~/.cache/tdp``.

    A per-user cache rather than ``./.tdp-cache``: entries are keyed by content (model
    fingerprint + text hash), so they are valid from any working directory, and nothing lands
    in (or gets committed from) the directory being audited.
    """
    env = os.environ.get("TDP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tdp"


def encode_chunk(fingerprint_digest: str, kind: str, arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise {text sha256: 1-D array} as one self-checking chunk file."""
    entries, blobs, offset = [], [], 0
    for key, arr in arrays.items():
        a = np.asarray(arr)
        if a.ndim != 1:
            raise ValueError(f"cache entries must be 1-D arrays, got shape {a.shape}")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        dtype = a.dtype.str
        if dtype not in ALLOWED_DTYPES:
            a, dtype = a.astype("<f8"), "<f8"
        raw = a.tobytes()
        entries.append([key, dtype, offset, int(a.size)])
        blobs.append(raw)
        offset += len(raw)
    header = json.dumps(
        {"fingerprint": fingerprint_digest, "kind": kind, "entries": entries},
        separators=(",", ":"),
    ).encode()
    payload = struct.pack("<I", len(header)) + header + b"".join(blobs)
    return MAGIC + hashlib.sha256(payload).digest() + payload


def decode_chunk(data: bytes, fingerprint_digest: str, kind: str) -> dict[str, np.ndarray]:
    """Parse and verify a chunk file; raise ValueError naming what is wrong with it."""
    if not data.startswith(MAGIC):
        raise ValueError("bad magic (not a tdp cache chunk, or truncated)")
    start = len(MAGIC) + 32
    if len(data) < start + 4:
        raise ValueError(f"truncated ({len(data)} bytes)")
    digest, payload = data[len(MAGIC) : start], data[start:]
    if hashlib.sha256(payload).digest() != digest:
        raise ValueError("checksum mismatch (truncated or modified)")
    (hlen,) = struct.unpack("<I", payload[:4])
    try:
        header = json.loads(payload[4 : 4 + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"unreadable header: {e}") from e
    if header.get("fingerprint") != fingerprint_digest or header.get("kind") != kind:
        raise ValueError("chunk belongs to another fingerprint or kind (misplaced file)")
    body = payload[4 + hlen :]
    out: dict[str, np.ndarray] = {}
    for key, dtype, off, n in header["entries"]:
        if dtype not in ALLOWED_DTYPES:
            raise ValueError(f"unsupported dtype {dtype!r}")
        size = np.dtype(dtype).itemsize * n
        if off < 0 or off + size > len(body):
            raise ValueError("entry extends past the end of the file")
        out[key] = np.frombuffer(body, dtype=dtype, count=n, offset=off).astype(dtype[1:])
    return out


@dataclass
class CacheStats:
    """What one cached scoring pass did: how many texts were read, scored, and set aside."""

    label: str
    fingerprint: str
    texts: int = 0
    kind: str = LOGPROBS
    hits: int = 0
    scored: int = 0
    chunks_written: int = 0
    corrupt_files: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One human-readable line, e.g. for report notes and stderr."""
        s = (
            f"{self.label} {KIND_NAMES.get(self.kind, self.kind)} ({self.fingerprint[:12]}): "
            f"{self.hits} of {self.texts} "
            f"texts from cache, {self.scored} scored"
        )
        if self.corrupt_files:
            s += f"; {len(self.corrupt_files)} corrupt cache file(s) set aside and rescored"
        return s


class ScoreCache:
    """A directory of chunk files, one subdirectory per backend fingerprint.

    Safe for several processes at once: writers never touch each other's files (unique names,
    atomic renames) and readers ignore temporary files. If two processes score the same text,
    both entries are valid and either may be read.
    """

    def __init__(self, root: str | Path, chunk_texts: int = DEFAULT_CHUNK_TEXTS) -> None:
        if chunk_texts < 1:
            raise CacheError(f"cache chunk size must be at least 1 text, got {chunk_texts}")
        self.root = Path(root).expanduser()
        self.chunk_texts = int(chunk_texts)
        self.stats: list[CacheStats] = []

    def _dir(self, fingerprint: Fingerprint, kind: str) -> Path:
        return self.root / FORMAT_DIR / fingerprint.digest() / kind

    def load(
        self, fingerprint: Fingerprint, keys: Iterable[str], kind: str = LOGPROBS
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        """Cached arrays for the wanted keys, and the corrupt files that were set aside."""
        wanted = set(keys)
        found: dict[str, np.ndarray] = {}
        corrupt: list[str] = []
        d = self._dir(fingerprint, kind)
        if not d.is_dir() or not wanted:
            return found, corrupt
        digest = fingerprint.digest()
        for path in sorted(d.glob("*.chunk")):
            try:
                entries = decode_chunk(path.read_bytes(), digest, kind)
            except (ValueError, struct.error, KeyError, TypeError) as e:
                self._set_aside(path, str(e))
                corrupt.append(str(path))
                continue
            except OSError as e:
                warnings.warn(
                    f"score cache file {path} cannot be read ({e}); its entries will be rescored",
                    CacheCorruptionWarning,
                    stacklevel=2,
                )
                corrupt.append(str(path))
                continue
            for key in wanted.intersection(entries):
                found[key] = entries[key]
        return found, corrupt

    def _set_aside(self, path: Path, why: str) -> None:
        aside = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, aside)
            where = f"moved to {aside.name}"
        except OSError:
            where = "left in place"
        warnings.warn(
            f"score cache file {path} is corrupt ({why}); {where}, its entries will be rescored",
            CacheCorruptionWarning,
            stacklevel=3,
        )

    def store(
        self, fingerprint: Fingerprint, arrays: Mapping[str, np.ndarray], kind: str = LOGPROBS
    ) -> Path:
        """Write one chunk durably: temp file, fsync, atomic rename, fsync of the directory."""
        d = self._dir(fingerprint, kind)
        try:
            d.mkdir(parents=True, exist_ok=True)
            meta = d.parent / "fingerprint.json"
            if not meta.exists():
                tmp_meta = meta.with_name(f".{uuid.uuid4().hex}.tmp")
                tmp_meta.write_text(json.dumps(fingerprint.to_dict(), indent=1, sort_keys=True))
                os.replace(tmp_meta, meta)
            data = encode_chunk(fingerprint.digest(), kind, arrays)
            name = f"{os.getpid()}-{uuid.uuid4().hex}.chunk"
            tmp = d / f".{name}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            final = d / name
            os.replace(tmp, final)
            fsync_dir(d)
        except OSError as e:
            raise CacheError(f"cannot write the score cache under {self.root}: {e}") from e
        return final

    def notes(self) -> list[str]:
        """One line per cached scoring pass, for the report."""
        return [f"score cache {self.root}: {s.line()}" for s in self.stats]
