"""Scoring throughput benchmark: one table of tokens/s and MFU per scoring path and model size.

Paths, all teacher-forced log-prob of every token of 8,192 random 64-token sequences in bf16:
  naive      one sequence per call, `model(input_ids, labels=ids).loss` (timed on a subset)
  batched    plain transformers, batch 1024: full logits -> fp32 log_softmax -> gather
  fast       HFBackend.token_logprobs_ids (trunk -> chunked lm_head + fp32 logsumexp), eager
  fast+comp  the same with torch.compile of trunk and chunk pass; compile time reported apart
  vllm       where `vllm` imports (it is not on the lent GPU image: then the row says so)

Models: random-init Llama, ~160M (vocab 50,304) and ~1.1B (TinyLlama shape, vocab 32,000).
MFU = 2 x all parameters x tokens/s / bf16 peak, the peak measured here with an 8192^3 bf16
matmul. Tokens counted = input tokens (64 per sequence), as in docs PERFORMANCE.md.

Run on a CUDA machine: `PYTHONPATH=. python bench/bench_scoring.py [--quick] [--sizes 160m,1.1b]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

SIZES = {
    # name: (hidden, intermediate, layers, heads, kv_heads, vocab, tie)
    "160m": (768, 2048, 12, 12, 12, 50304, False),
    "1.1b": (2048, 5632, 22, 32, 4, 32000, False),
}


@dataclass
class Row:
    model: str
    path: str
    tok_s: float
    mfu: float
    note: str = ""


def sync() -> None:
    torch.cuda.synchronize()


def bf16_peak(n: int = 8192, reps: int = 20) -> float:
    """Median TFLOP/s of an n^3 bf16 matmul (random data, events, warm)."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        sync()
        times.append(s.elapsed_time(e) / 1e3)
    return 2 * n**3 / float(np.median(times)) / 1e12


def build_model_dir(size: str, root: Path) -> Path:
    """Random-init Llama in bf16 with a word-level tokenizer t0..t{V-1}, saved to disk."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    hidden, inter, layers, heads, kv, vocab, tie = SIZES[size]
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=2048,
        tie_word_embeddings=tie, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    out = root / size
    model.save_pretrained(out)
    del model
    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="t0", bos_token="t1", eos_token="t2", pad_token="t0"
    ).save_pretrained(out)
    return out


def timed(fn) -> float:  # noqa: ANN001
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def bench_size(
    size: str, args: argparse.Namespace, peak: float, root: Path
) -> tuple[list[Row], dict]:
    from harness.backends.hf import HFBackend

    rows: list[Row] = []
    info: dict = {}
    d = build_model_dir(size, root)
    vocab = SIZES[size][5]
    g = np.random.default_rng(1)
    seqs = g.integers(3, vocab, size=(args.n, args.length))
    seqs[:, 0] = 1
    encoded = [list(map(int, r)) for r in seqs]
    tokens = args.n * args.length

    be = HFBackend(str(d), dtype="bfloat16", device="cuda", batch_size=args.batch,
                   max_batch_tokens=args.batch * args.length, chunk_rows=args.chunk)
    model = be.model
    nparams = sum(p.numel() for p in model.parameters())
    info["params"] = nparams
    info["attn"] = be.attn_implementation
    mfu = lambda tps: 2 * nparams * tps / (peak * 1e12)  # noqa: E731

    # naive: one sequence per call
    ids_all = torch.tensor(seqs, device="cuda")
    with torch.inference_mode():
        for i in range(5):
            model(input_ids=ids_all[i : i + 1], labels=ids_all[i : i + 1]).loss.item()

        def naive() -> None:
            for i in range(args.naive_n):
                model(input_ids=ids_all[i : i + 1], labels=ids_all[i : i + 1]).loss.item()

        t = timed(naive)
    tps = args.naive_n * args.length / t
    rows.append(Row(size, "naive, 1 seq/call, .loss", tps, mfu(tps), f"{args.naive_n} seqs"))

    # plain batched transformers
    def batched() -> list[np.ndarray]:
        outs = []
        with torch.inference_mode():
            for s in range(0, args.n, args.plain_batch):
                ids = torch.tensor(seqs[s : s + args.plain_batch], device="cuda")
                logits = model(input_ids=ids).logits[:, :-1]
                lp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None])
                outs.append(lp.squeeze(-1).cpu().numpy())
        return outs

    with torch.inference_mode():
        ids = torch.tensor(seqs[: args.plain_batch], device="cuda")
        model(input_ids=ids).logits.sum().item()
    ref: list[np.ndarray] = []
    t = timed(lambda: ref.extend(batched()))
    ref_flat = np.concatenate([r.reshape(-1) for r in ref])
    tps = tokens / t
    rows.append(Row(size, f"plain batched {args.plain_batch}, full logits", tps, mfu(tps)))
    ref = None
    gc.collect()
    torch.cuda.empty_cache()

    # hf fast path, eager
    be.token_logprobs_ids(encoded[: args.batch])
    got: list[np.ndarray] = []
    t = timed(lambda: got.extend(be.token_logprobs_ids(encoded)))
    diff = float(np.abs(np.concatenate(got) - ref_flat).max())
    tps = tokens / t
    rows.append(Row(size, f"hf fast path (eager, bs {args.batch}, chunk {args.chunk})", tps,
                    mfu(tps), f"max|diff| vs plain {diff:.2e}"))
    info["fast_eager_maxdiff"] = diff
    t = timed(lambda: be.vocab_stats_ids(encoded))
    tps = tokens / t
    rows.append(Row(size, "hf fast path vocab_stats (Min-K%++ mu, sigma^2; eager)", tps, mfu(tps)))
    be = model = got = None
    gc.collect()
    torch.cuda.empty_cache()

    # hf fast path, compiled
    for mode in args.compile_modes:
        try:
            bc = HFBackend(str(d), dtype="bfloat16", device="cuda", batch_size=args.batch,
                           max_batch_tokens=args.batch * args.length, chunk_rows=args.chunk,
                           compile=mode)
            tc = timed(lambda: bc.token_logprobs_ids(encoded[: args.batch]))  # noqa: B023
            bc.token_logprobs_ids(encoded[: args.batch])
            got = []
            t = timed(lambda: got.extend(bc.token_logprobs_ids(encoded)))  # noqa: B023
            diff = float(np.abs(np.concatenate(got) - ref_flat).max())
            tps = tokens / t
            rows.append(Row(size, f"hf fast path + compile {mode}", tps, mfu(tps),
                            f"compile {tc:.0f} s (apart); max|diff| vs plain {diff:.2e}"))
            info[f"compile_s_{mode}"] = tc
            bc = got = None
        except Exception as e:  # one failing mode must not lose the other rows
            rows.append(Row(size, f"hf fast path + compile {mode}", float("nan"), float("nan"),
                            f"failed: {type(e).__name__}: {str(e)[:80]}"))
        gc.collect()
        torch.cuda.empty_cache()

    # vllm
    try:
        import vllm  # noqa: F401

        rows.append(Row(size, "vllm", float("nan"), float("nan"), "importable but not run here"))
    except ImportError:
        rows.append(Row(size, "vllm", float("nan"), float("nan"),
                        "not importable on this machine; not measured"))
    return rows, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="160m,1.1b")
    ap.add_argument("--n", type=int, default=8192, help="sequences")
    ap.add_argument("--length", type=int, default=64, help="tokens per sequence")
    ap.add_argument("--naive-n", type=int, default=256, help="sequences timed one at a time")
    ap.add_argument("--plain-batch", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=1024, help="fast path rows per forward")
    ap.add_argument("--chunk", type=int, default=16384, help="fast path vocab chunk rows")
    ap.add_argument("--compile-modes", default="default,reduce-overhead",
                    help="comma list of torch.compile modes for the fast path ('' = none)")
    ap.add_argument("--json", default=os.environ.get("OUT", ".") + "/bench_scoring.json")
    args = ap.parse_args()
    args.compile_modes = [m for m in args.compile_modes.split(",") if m]
    if not torch.cuda.is_available():
        raise SystemExit("bench_scoring needs a CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    peak = bf16_peak()
    dev = torch.cuda.get_device_name()
    import transformers

    rows: list[Row] = []
    infos = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            r, info = bench_size(size, args, peak, Path(tmp))
            rows += r
            infos[size] = info
            print(f"[{size}] done: {info}", flush=True)
    header = (f"device: {dev}; torch {torch.__version__}, transformers {transformers.__version__}; "
              f"bf16 peak (8192^3 matmul) {peak:.0f} TFLOP/s; {args.n} x {args.length}-token seqs")
    lines = [header, "", "| model | params | path | tokens/s | MFU | note |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        tps = "n/a" if np.isnan(r.tok_s) else f"{r.tok_s:,.0f}"
        m = "n/a" if np.isnan(r.mfu) else f"{r.mfu:.3f}"
        params = f"{infos[r.model]['params'] / 1e6:.0f}M"
        lines.append(f"| {r.model} | {params} | {r.path} | {tps} | {m} | {r.note} |")
    print("\n".join(lines), flush=True)
    with open(args.json, "w") as f:
        json.dump({"header": header, "rows": [asdict(r) for r in rows], "info": infos,
                   "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
