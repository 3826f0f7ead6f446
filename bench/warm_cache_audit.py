"""Time a Min-K%++ audit cold and on a fully warm score cache, split by backend pass.

On a warm cache the only model work left should be none: every text's log-probs and
vocabulary statistics come from the cache. The table shows how many texts each backend pass
was asked to score and the seconds it took, for a cold run and the warm rerun.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/warm_cache_audit.py [--m 3000] [--chunk 1024]
        [--vocab 8192] [--width 64] [--layers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from canaries.canary_set import Plan, new_canary_set, save_canary_set
from canaries.drbg import derive_seed
from canaries.generators import words_spec
from harness.audit import audit_from_paths
from harness.backends.hf import HFBackend
from harness.cache import ScoreCache
from harness.train import stdlib_docstrings, train_tokenizer

SPENT: dict[str, float] = defaultdict(float)
TEXTS: dict[str, int] = defaultdict(int)


def _timed(name: str, method):  # noqa: ANN001, ANN202
    def wrapper(self, texts):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        try:
            return method(self, texts)
        finally:
            SPENT[name] += time.perf_counter() - t0
            TEXTS[name] += len(texts)

    return wrapper


def build_model(out: Path, vocab: int, width: int, layers: int) -> Path:
    """A random-init GPT-2 with a tokenizer of `vocab` entries trained here (no downloads)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = train_tokenizer(stdlib_docstrings(max_bytes=400_000), vocab_size=vocab)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=width, n_layer=layers,
                     n_head=2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(cfg).eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out


def run(model: Path, canaries: Path, cache_dir: Path, chunk: int) -> tuple[float, dict, dict]:
    SPENT.clear()
    TEXTS.clear()
    cache = ScoreCache(cache_dir, chunk)
    t0 = time.perf_counter()
    audit_from_paths(f"hf:{model},dtype=float32,device=cpu,batch_size=32", canaries,
                     progress=False, cache=cache)
    return time.perf_counter() - t0, dict(SPENT), dict(TEXTS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--m", type=int, default=3000, help="counterfactuals (texts = m + k)")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=8192, help="tokenizer size of the toy model")
    ap.add_argument("--width", type=int, default=64, help="hidden size of the toy model")
    ap.add_argument("--layers", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    HFBackend.token_logprobs = _timed("token_logprobs", HFBackend.token_logprobs)
    HFBackend.vocab_stats = _timed("vocab_stats", HFBackend.vocab_stats)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_model(root / "model", args.vocab, args.width, args.layers)
        plan = Plan(score="min_k_pp", statistic="rank-sum", counterfactuals=args.m, alpha=0.01)
        cs, seed = new_canary_set(words_spec(8), args.k, plan, seed=derive_seed("bench", "1"))
        canaries = save_canary_set(cs, root / "canaries.json", seed)
        rows = [("cold", *run(model, canaries, root / "cache", args.chunk)),
                ("warm", *run(model, canaries, root / "cache", args.chunk))]
    print(f"Min-K%++ audit, {args.m + args.k} texts, chunk {args.chunk}, random GPT-2 "
          f"(vocab {args.vocab}, width {args.width}, {args.layers} layers) on CPU, 1 thread")
    print("| run | total s | token_logprobs texts / s | vocab_stats texts / s |")
    print("|---|---:|---:|---:|")
    for name, total, spent, texts in rows:
        cells = [f"{texts.get(p, 0)} / {spent.get(p, 0.0):.2f}"
                 for p in ("token_logprobs", "vocab_stats")]
        print(f"| {name} | {total:.2f} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
