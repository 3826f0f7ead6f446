"""Controlled extraction run: one tiny model, canary sets planted 32, 8 and 2 times, and one never.

Also compares document extraction on training documents against held-out documents (evidence
only). Writes results/extraction-demo/report.{json,html,md} and summary.md. CPU, offline.

    .venv/bin/python bench/extraction_demo.py [--out results/extraction-demo]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from canaries.canary_set import Plan, new_canary_set, save_canary_set
from canaries.drbg import derive_seed
from canaries.generators import words_spec
from canaries.inject import inject_texts
from harness.audit import AuditContext, make_report, run_audit
from harness.backends.hf import HFBackend
from harness.report import write_report
from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer
from tasks.extraction import ExtractionConfig, document_evidence, extract_documents

REPEATS = (32, 8, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="results/extraction-demo")
    ap.add_argument("--corpus-bytes", type=int, default=15_000)
    ap.add_argument("--canaries", type=int, default=8, help="canaries per repetition level")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--samples", type=int, default=4)
    args = ap.parse_args()
    t0 = time.time()
    out = Path(args.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)

    docs = stdlib_docstrings(args.corpus_bytes)
    split = int(len(docs) * 0.8)
    members, held_out = docs[:split], docs[split:]
    tok = train_tokenizer(docs, 2048)
    spec = words_spec(12, prefix_length=4)  # 4 public words, 8 secret words
    plan = Plan(task="extraction", statistic="extraction-greedy", counterfactuals=1, alpha=0.01)
    sets = {}
    for label in [f"r{r}" for r in REPEATS] + ["never"]:
        cs, seed = new_canary_set(spec, args.canaries, plan, derive_seed("extraction-demo", label))
        sets[label] = (cs, save_canary_set(cs, work / f"canaries-{label}.json", seed))
    texts = list(members)
    for r in REPEATS:
        texts, _ = inject_texts(
            texts, sets[f"r{r}"][0], r, derive_seed("extraction-demo-inject", str(r))
        )
    cfg = TrainConfig(n_layer=2, n_embd=64, n_head=4, block_size=64, epochs=args.epochs, lr=6e-3)
    trained = train_causal_lm(texts, tok, cfg, work / "model", desc="train")
    print(
        f"trained {trained.parameters:,} parameters in {trained.seconds:.0f}s, "
        f"loss {trained.final_loss:.3f}"
    )

    backend = HFBackend(trained.path)
    mspec = f"hf:{trained.path}"
    audits = []
    for label, (cs, path) in sets.items():
        title = f"canaries planted {label[1:]}x" if label != "never" else "canaries never planted"
        role = "audit" if label != "never" else "null-control"
        ctx = AuditContext(cs, str(path), backend, mspec, progress=False)
        audits.append(
            run_audit("extraction", ctx, {"samples": args.samples}, title=title, role=role)
        )
        r = audits[-1].primary.result
        print(
            f"{title}: {r.statistic:g} of {r.k * spec.secret_length} secret words, "
            f"p <= {r.pvalue:.3g}"
        )

    # the tiny model's context is 128 tokens: 16 + 16 words with a 3-token-per-word budget fit
    dcfg = ExtractionConfig(
        doc_prefix_words=16, doc_continuation_words=16, tokens_per_word=3, max_documents=40
    )
    evidence = {}
    for name, group in (("training documents", members), ("held-out documents", held_out)):
        res = document_evidence(extract_documents(backend, group, dcfg), name)
        evidence[name] = {
            k: res.details[k]
            for k in (
                "mean_bleu",
                "exact_continuations",
                "mean_exact_prefix_words",
                "max_lcs_chars",
            )
        }
        evidence[name]["documents"] = res.k
    notes = [
        f"One GPT-2-style model ({trained.parameters:,} parameters, "
        f"config {json.dumps(asdict(cfg))}) "
        f"trained on {len(members)} stdlib docstrings with {args.canaries} canaries planted 32x, "
        f"{args.canaries} planted 8x, {args.canaries} planted twice; "
        f"{args.canaries} more never planted.",
        "Document extraction (evidence, no bound): "
        + "; ".join(f"{k}: {json.dumps(v)}" for k, v in evidence.items()),
        f"Total time {time.time() - t0:.0f} s.",
    ]
    report = make_report("extraction demo: canaries planted 32x, 8x, 2x and never", audits, notes)
    report = replace(report, extra={"document_extraction": evidence})
    write_report(report, out)
    lines = [
        "| canary set | secret words reproduced (greedy) | best of greedy + samples | "
        "primary p (exact bound) | Holm |",
        "|---|---|---|---|---|",
    ]
    holm = report.holm_adjusted or [float("nan")] * len(audits)
    for a, h in zip(audits, holm, strict=True):
        r = a.primary.result
        best = next(t.result for t in a.tests if t.score == "best-of-n-matches")
        lines.append(
            f"| {a.title} | {r.statistic:g} / {r.k * spec.secret_length} | {best.statistic:g} "
            f"| {r.pvalue:.3g} (log10 {r.details['log10_p']:.1f}) | {h:.3g} |"
        )
    lines += [
        "",
        "| documents | n | mean BLEU | exact 16-word continuations | mean exact prefix words "
        "| longest common substring (chars) |",
        "|---|---|---|---|---|---|",
    ]
    for k, v in evidence.items():
        lines.append(
            f"| {k} | {v['documents']} | {v['mean_bleu']:.3f} | {v['exact_continuations']} "
            f"| {v['mean_exact_prefix_words']:.1f} | {v['max_lcs_chars']} |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
