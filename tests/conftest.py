"""Shared fixtures: a tiny corpus, a committed canary set, and tiny models trained here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from canaries.canary_set import Plan, new_canary_set, save_canary_set
from canaries.drbg import derive_seed
from canaries.generators import words_spec
from canaries.inject import inject_texts
from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer

# Tiny models run many times faster on one thread than on two contended ones (measured:
# 1,200 texts scored in 3.4 s vs 101 s on this 2-core machine under load).
torch.set_num_threads(1)

TINY_TRAIN = TrainConfig(n_layer=1, n_embd=64, n_head=2, block_size=32, epochs=6, batch_size=16, lr=5e-3, warmup_steps=5)


@pytest.fixture(autouse=True, scope="session")
def _private_score_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep `tdp audit`'s default score cache out of the user's home during tests."""
    import os

    os.environ["TDP_CACHE_DIR"] = str(tmp_path_factory.mktemp("tdp-cache"))


@dataclass(frozen=True)
class TinyWorld:
    """A corpus with planted canaries, and models trained with and without them."""

    root: Path
    canary_file: Path
    never_planted_file: Path
    target: Path
    reference: Path
    docs: list[str]


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    root = tmp_path_factory.mktemp("tiny_world")
    docs = stdlib_docstrings(max_bytes=40_000)
    spec = words_spec(6, prefix_length=2)
    plan = Plan(score="loss", statistic="rank-sum", counterfactuals=200, alpha=0.01)
    cs, seed = new_canary_set(spec, 8, plan, seed=derive_seed("test-canaries", "1"))
    save_canary_set(cs, root / "canaries.json", seed)
    other, other_seed = new_canary_set(spec, 8, plan, seed=derive_seed("test-never", "1"))
    save_canary_set(other, root / "never.json", other_seed)
    injected, _ = inject_texts(docs, cs, repeat=24, seed=derive_seed("test-inject", "1"))
    tok = train_tokenizer(docs, vocab_size=512)
    target = train_causal_lm(injected, tok, TINY_TRAIN, root / "target", progress=False)
    reference = train_causal_lm(docs, tok, TINY_TRAIN, root / "reference", progress=False)
    return TinyWorld(
        root=root,
        canary_file=root / "canaries.json",
        never_planted_file=root / "never.json",
        target=Path(target.path),
        reference=Path(reference.path),
        docs=docs,
    )


# --- the tiny LM of tests/tiny_lm.py, shared by the backend and server tests ----------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny LM folder (built once per session, see tests/tiny_lm.py)."""
    from tests.tiny_lm import tiny_lm_dir

    return tiny_lm_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def server(model_dir: Path):
    """`tdp serve`'s server over the tiny LM on a loopback port."""
    from tests.tiny_lm import serving

    with serving(model_dir) as srv:
        yield srv


@pytest.fixture(scope="module")
def hf_reference(model_dir: Path):
    """The float32 hf backend over the tiny LM: the numbers every backend is held to."""
    from harness.backends import load_backend

    return load_backend(f"hf:{model_dir},dtype=float32,device=cpu")
