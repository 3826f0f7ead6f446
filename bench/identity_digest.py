"""Time to compute a model's weights digest (tensors-v1), cold and from the per-file cache.

Model: random-init GPT-2 small shape (124M parameters, ~500 MB in fp32), saved three ways:
one safetensors file, safetensors shards (100 MB each, with index), one pytorch `.bin`. For
each layout: `weights_digest` with an empty digest cache ("cold": every tensor read and
hashed), then again with the cache filled ("warm": one stat per file), and, for comparison, a
plain sha256 of the files' bytes (what identity hashed before). The files were just written,
so "cold" means a cold digest cache, not a cold OS page cache (dropping that would disturb
everyone else on a shared machine). Every layout must give the same digest; the script checks.

From the repository root: `PYTHONPATH=. python bench/identity_digest.py [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import torch

from harness.backends.identity import weight_files, weights_digest


def build(root: Path) -> dict[str, Path]:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).eval()  # 124M parameters, fp32
    out = {name: root / name for name in ("single", "sharded", "bin")}
    model.save_pretrained(out["single"])
    model.save_pretrained(out["sharded"], max_shard_size="100MB")
    out["bin"].mkdir()
    torch.save(model.state_dict(), out["bin"] / "pytorch_model.bin")
    return out


def file_bytes_sha256(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def timed(fn, repeat: int) -> tuple[float, object]:  # noqa: ANN001 - any callable
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def measure(name: str, folder: Path, root: Path, repeat: int) -> tuple:
    """(layout, files, MB, cold s, warm s, file-bytes sha256 s, digests seen)."""
    files = weight_files(folder)
    mb = sum(f.stat().st_size for f in files) / 1e6
    caches = iter(root / f"cache-{name}-{i}" for i in range(repeat))
    cold, digest = timed(lambda: weights_digest(files, next(caches)), repeat)
    warm_cache = root / f"cache-{name}-warm"
    weights_digest(files, warm_cache)
    warm, again = timed(lambda: weights_digest(files, warm_cache), repeat)
    raw, _ = timed(lambda: file_bytes_sha256(files), repeat)
    return name, len(files), mb, cold, warm, raw, {digest, again}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="best of N for each timing")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        layouts = build(root)
        print(f"built and saved 3 layouts in {time.perf_counter() - t:.1f} s")
        rows = [measure(name, folder, root, args.repeat) for name, folder in layouts.items()]
    digests = {d for row in rows for d in row[-1]}
    print(f"\n{'layout':<8} {'files':>5} {'MB':>7} {'cold s':>8} {'cold MB/s':>10} "
          f"{'warm ms':>8} {'file sha256 s':>14}")
    for name, n, mb, cold, warm, raw, _ in rows:
        print(f"{name:<8} {n:>5} {mb:>7.0f} {cold:>8.2f} {mb / cold:>10.0f} {warm * 1e3:>8.2f} "
              f"{raw:>14.2f}")
    print(f"\none digest for all layouts: {len(digests) == 1} ({sorted(digests)[0][:16]}...)")
    if len(digests) != 1:
        raise SystemExit("layouts disagree")


if __name__ == "__main__":
    main()
