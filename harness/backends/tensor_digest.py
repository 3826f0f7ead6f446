"""A digest of a checkpoint's weight tensors, independent of how the checkpoint was saved.

What enters: every tensor's name, dtype, shape and raw bytes (row-major, as stored), in name
order; never file names, shard boundaries, file metadata or files the loader ignores. So one
safetensors file, shards with an index, a pytorch `.bin` and sharded `.bin` files holding the same
tensors give one digest, and a junk file in the folder changes nothing.

Which files: those transformers loads from a model folder, in its order of preference
(transformers `modeling_utils._get_resolved_checkpoint_files`: `model.safetensors`, then the
safetensors index, then `pytorch_model.bin`, then its index).

Per-file results are cached under the score cache dir, keyed by (real path, device, inode, size,
mtime_ns), so a large model is hashed once and a changed file is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends.base import IDENTITY_SCHEME, BackendError

log = logging.getLogger(__name__)

SCHEME = IDENTITY_SCHEME
_LABEL = b"tdp-weights-tensors-v1\n"
_CACHE_SUBDIR = "weights-digest-v1"

#: (single file, index) pairs in transformers' order of preference
LAYOUTS = (
    ("model.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model.bin.index.json"),
)


@dataclass(frozen=True)
class TensorRecord:
    """One stored tensor as it enters the digest: the sha256 stands in for its bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    sha256: str

    def line(self) -> bytes:
        return (json.dumps([self.name, self.dtype, list(self.shape), self.sha256]) + "\n").encode()


def pick_weight_names(names: Collection[str], shards: Callable[[str], list[str]]) -> list[str]:
    """Of the file `names` in a model folder, those transformers loads: the first layout found;
    `shards(index_name)` lists an index's shard files."""
    for single, index in LAYOUTS:
        if single in names:
            return [single]
        if index in names:
            return shards(index)
    return []


def weight_files(directory: str | Path) -> list[Path]:
    """The weight files transformers loads from `directory`: one file, or an index's shards."""
    d = Path(directory)
    names = {p.name for p in d.iterdir() if p.is_file()} if d.is_dir() else set()
    picked = pick_weight_names(names, lambda index: index_shards(d / index))
    if not picked:
        wanted = ", ".join(n for pair in LAYOUTS for n in pair)
        raise BackendError(f"{d}: no weight files ({wanted})")
    files = [d / n for n in picked]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise BackendError(f"{d}: shards named in the index are missing: {missing}")
    return files


def index_shards(index: Path) -> list[str]:
    """The shard file names an index's weight_map points at, sorted."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = sorted({str(v) for v in weight_map.values()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise BackendError(f"{index}: not a readable weight index ({e})") from e
    if not shards or any("/" in s or s.startswith(".") for s in shards):
        raise BackendError(f"{index}: weight_map names no shard files in this folder")
    return shards


def weights_digest(files: Iterable[str | Path], cache_dir: Path | None = None) -> str:
    """sha256 over the records of every tensor in `files`, in name order (scheme tensors-v1).

    `cache_dir`: where per-file records are kept; None = the score cache dir's default.
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise BackendError("no weight files to digest")
    root = _cache_root(cache_dir)
    merged: dict[str, tuple[TensorRecord, Path]] = {}
    for path in paths:
        for rec in file_records(path, root):
            seen = merged.get(rec.name)
            if seen is not None and seen[0] != rec:
                raise BackendError(
                    f"tensor {rec.name!r} is stored differently in {seen[1]} and {path}"
                )
            merged[rec.name] = (rec, path)
    h = hashlib.sha256(_LABEL)
    for name in sorted(merged):
        h.update(merged[name][0].line())
    return h.hexdigest()


def file_records(path: Path, cache_root: Path | None) -> list[TensorRecord]:
    """The tensor records of one weight file, from the cache when the file is unchanged."""
    try:
        key = _file_key(path)
    except OSError as e:
        raise BackendError(f"cannot read weight file {path}: {e.strerror}") from e
    cached = _cache_read(cache_root, key)
    if cached is not None:
        return cached
    records = list(_scan(path))
    if _file_key(path) == key:  # a file rewritten while we read it is not cached
        _cache_write(cache_root, key, records)
    return records


def _scan(path: Path) -> Iterator[TensorRecord]:
    if path.suffix == ".safetensors":
        yield from _scan_safetensors(path)
    else:
        yield from _scan_torch(path)


def _scan_safetensors(path: Path) -> Iterator[TensorRecord]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            for name in sorted(f.keys()):
                yield _record(name, f.get_tensor(name))  # one tensor in memory at a time
    except (OSError, SafetensorError) as e:
        raise BackendError(f"{path}: not a readable safetensors file ({e})") from e


def _scan_torch(path: Path) -> Iterator[TensorRecord]:
    import torch

    try:  # mmap: tensors are views of the file, read page by page as they are hashed
        state = _torch_load(path, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise BackendError(f"{path}: not a loadable pytorch weight file ({e})") from e
        log.info("%s: pre-1.6 torch format, cannot be mapped; reading it whole", path)
        state = _torch_load(path, mmap=False)
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise BackendError(f"{path}: not a flat state dict of named tensors")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    dropped = _alias_names(tensors)
    for name in sorted(tensors):
        if name not in dropped:
            yield _record(name, tensors[name])


def _torch_load(path: Path, mmap: bool) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except RuntimeError as e:
        if mmap and "mmap" in str(e):
            raise
        raise BackendError(f"{path}: not a loadable pytorch weight file ({e})") from e
    except Exception as e:  # pickle, zip and unpickler errors come in many types
        raise BackendError(f"{path}: not a loadable pytorch weight file ({e})") from e


def legacy_weights_sha256(directory: str | Path) -> str:
    """The identity's weights hash before tensors-v1: sha256 over the names and bytes of every
    `*.safetensors/*.bin/*.pt/*.pth` file in the folder. Only for checking old reports."""
    d = Path(directory)
    files = sorted(p for p in d.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
    if not files:
        raise BackendError(f"{d}: no weight files (.safetensors, .bin, .pt, .pth)")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def _alias_names(tensors: dict[str, Any]) -> set[str]:
    """Names that are views of the same storage as another name's tensor (tied weights).

    `save_pretrained` writes a tied tensor once in safetensors (safetensors refuses aliases) but
    torch.save keeps every name. Only true aliases are folded, never tensors that merely hold
    equal values (e.g. LayerNorm weights at init), so a checkpoint that lacks a tensor never
    matches one that has it. The kept name is the one transformers keeps: a tie points a top-level
    head (`lm_head.weight`) at a parameter inside the base model (`model.embed_tokens.weight`),
    so the deepest name (most dots) wins, then the smallest.
    """
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name, t in tensors.items():
        if t.numel() == 0:
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
               t.stride(), t.dtype)
        groups.setdefault(key, []).append(name)
    dropped: set[str] = set()
    for names in groups.values():
        keep = min(names, key=lambda n: (-n.count("."), n))
        dropped.update(n for n in names if n != keep)
    return dropped


def _record(name: str, tensor: Any) -> TensorRecord:
    import torch

    flat = tensor.detach().contiguous().reshape(-1)
    # bf16 and fp8 have no numpy dtype: hash the bytes through a uint8 view
    raw = flat.view(torch.uint8).numpy() if flat.numel() else b""
    digest = hashlib.sha256(memoryview(raw)).hexdigest()
    dtype = str(tensor.dtype).removeprefix("torch.")
    return TensorRecord(name, dtype, tuple(int(s) for s in tensor.shape), digest)


# --- per-file cache ---------------------------------------------------------------------------
def _cache_root(cache_dir: Path | None) -> Path | None:
    if cache_dir is None:
        from harness.cache import default_cache_dir

        cache_dir = default_cache_dir()
    return Path(cache_dir) / _CACHE_SUBDIR


def _file_key(path: Path) -> list[Any]:
    real = os.path.realpath(path)  # hub snapshots link to blobs: key the blob itself
    st = os.stat(real)
    return [real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _cache_file(root: Path, key: list[Any]) -> Path:
    return root / (hashlib.sha256(json.dumps(key).encode()).hexdigest() + ".json")


def _cache_read(root: Path | None, key: list[Any]) -> list[TensorRecord] | None:
    if root is None:
        return None
    try:
        data = json.loads(_cache_file(root, key).read_text())
        if data["key"] != key or data["scheme"] != SCHEME:
            return None
        return [TensorRecord(n, d, tuple(s), h) for n, d, s, h in data["tensors"]]
    except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: hash again
        return None


def _cache_write(root: Path | None, key: list[Any], records: list[TensorRecord]) -> None:
    from canaries.files import atomic_write_text

    if root is None:
        return
    payload = {"scheme": SCHEME, "key": key,
               "tensors": [[r.name, r.dtype, list(r.shape), r.sha256] for r in records]}
    try:
        atomic_write_text(_cache_file(root, key), json.dumps(payload), mode=0o600)
    except OSError as e:  # an unwritable cache costs time next run, never a wrong digest
        log.debug("weights digest cache not written (%s)", e)
