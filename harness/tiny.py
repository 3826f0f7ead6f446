"""A tiny causal LM trained from scratch on stdlib docstrings, cached on disk.

Used as the default model of `tdp calibrate` and by tests that need a real model: it never
saw any canary drawn later, which is exactly what a null audit needs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer

#: a model small enough to train in well under a minute on one CPU core
TINY_TRAIN = TrainConfig(n_layer=1, n_embd=64, n_head=2, block_size=64, epochs=1, batch_size=16)


def default_cache() -> Path:
    import os

    return Path(os.environ.get("TDP_CACHE", Path.home() / ".cache" / "tdp")) / "tiny-models"


def tiny_model(
    cache_dir: str | Path | None = None,
    corpus_bytes: int = 60_000,
    vocab_size: int = 512,
    train: TrainConfig = TINY_TRAIN,
    texts: list[str] | None = None,
    progress: bool = False,
) -> Path:
    """Train (once) and return the directory of a tiny model; keyed by its settings and corpus."""
    docs = texts if texts is not None else stdlib_docstrings(corpus_bytes)
    key = hashlib.sha256(
        json.dumps(
            {"train": asdict(train), "vocab": vocab_size, "docs": docs}, sort_keys=True
        ).encode()
    ).hexdigest()[:16]
    out = Path(cache_dir or default_cache()) / f"tiny-{key}"
    if (out / "config.json").exists() and (out / "tdp_training.json").exists():
        return out
    tokenizer = train_tokenizer(docs, vocab_size)
    train_causal_lm(docs, tokenizer, train, out, progress=progress, desc="train tiny model")
    return out
