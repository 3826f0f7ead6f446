"""A tiny random-init GPT-2 with a tokenizer trained here, for backend tests (no downloads)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from harness.train import stdlib_docstrings, train_tokenizer

#: texts every backend test scores: plain prose, digits, unicode, one very short text
TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Return the number of items in a container.",
    "Canary 7 3 9 1 pineapple orbit cello ladder",
    "x",
    "Unicode survives: naïve café – ünïcode ✓ done.",
    "If the argument is a string, the result is the same string repeated twice over.",
)


def build_tiny_lm(out: Path, seed: int = 0) -> Path:
    """Save a 2-layer GPT-2 (init std 0.3: next-token laws far from uniform) and tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = train_tokenizer(stdlib_docstrings(max_bytes=30_000), vocab_size=400)
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=128,
        n_embd=32,
        n_layer=2,
        n_head=2,
        initializer_range=0.3,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = GPT2LMHeadModel(cfg).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


_BUILT: dict[str, Path] = {}


def tiny_lm_dir(tmp_path_factory, seed: int = 0) -> Path:  # noqa: ANN001 - pytest factory
    """Build the tiny model once per test session (per seed) and reuse it."""
    key = f"tiny-{seed}"
    if key not in _BUILT:
        _BUILT[key] = build_tiny_lm(tmp_path_factory.mktemp(key), seed)
    return _BUILT[key]


@contextmanager
def serving(
    model_dir: Path,
    api_key: str | None = None,
    handler=None,  # noqa: ANN001
    name: str = "tiny",
) -> Iterator:
    """A real `tdp serve` ScoringServer on a free loopback port, in a background thread."""
    from harness.backends.hf import HFBackend
    from harness.serve.completions import ScoringModel
    from harness.serve.server import ScoringServer

    backend = HFBackend(str(model_dir), dtype="float32", device="cpu", batch_size=4)
    server = ScoringServer(ScoringModel(backend, name), "127.0.0.1", 0, api_key, handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
