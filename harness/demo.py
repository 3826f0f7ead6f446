"""`tdp demo`: corpus -> canaries -> injection -> train target and reference -> audit -> report.

Everything runs offline on a CPU in a few minutes. The demo draws its canaries from a seed
derived from `--seed` so that its numbers are reproducible; a real canary set draws fresh
secret randomness (`tdp canaries new`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from canaries.canary_set import Plan, new_canary_set, save_canary_set
from canaries.corpus import Corpus, write_corpus
from canaries.drbg import derive_seed
from canaries.generators import words_spec
from canaries.inject import inject_corpus
from harness.audit import AuditContext, make_report, run_audit
from harness.backends.hf import HFBackend
from harness.report import write_report
from harness.results import Report
from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the embedded demo; the defaults finish in under five minutes on 2 CPU cores."""

    corpus_bytes: int = 300_000
    vocab_size: int = 2048
    canaries: int = 32
    canary_length: int = 10
    repeat: int = 8
    counterfactuals: int = 500
    alpha: float = 0.01
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)


def _say(msg: str) -> None:
    print(f"[tdp demo] {msg}", flush=True)


def run_demo(out_dir: str | Path = "results/demo", config: DemoConfig | None = None) -> Report:
    """Run the whole demo and write `out_dir/report.{json,html,md}`; returns the report."""
    config = config or DemoConfig()
    t0 = time.time()
    out = Path(out_dir)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)

    docs = stdlib_docstrings(config.corpus_bytes)
    write_corpus(Corpus(texts=docs, names=[str(i) for i in range(len(docs))], records=[{} for _ in docs]),
                 work / "corpus.jsonl")
    _say(f"corpus: {len(docs)} stdlib docstrings, {sum(map(len, docs)):,} characters")

    spec = words_spec(config.canary_length)
    plan = Plan(score="loss", statistic="rank-sum", counterfactuals=config.counterfactuals, alpha=config.alpha)
    seed = str(config.seed)
    planted, planted_seed = new_canary_set(spec, config.canaries, plan, derive_seed("demo-canaries", seed))
    save_canary_set(planted, work / "canaries.json", planted_seed)
    fresh, fresh_seed = new_canary_set(spec, config.canaries, plan, derive_seed("demo-fresh", seed))
    save_canary_set(fresh, work / "never-planted-canaries.json", fresh_seed)
    manifest = inject_corpus(work / "corpus.jsonl", planted, config.repeat, work / "corpus-injected.jsonl",
                             seed=derive_seed("demo-inject", seed), force=True)
    _say(f"planted {config.canaries} canaries x{config.repeat} ({len(manifest.insertions)} insertions); "
         f"commitment {planted.commitment[:16]}...")

    from canaries.corpus import read_corpus

    tokenizer = train_tokenizer(docs, config.vocab_size)  # trained on clean text: no canary merges
    injected = read_corpus(work / "corpus-injected.jsonl").texts
    target = train_causal_lm(injected, tokenizer, config.train, work / "target", desc="train target")
    _say(f"target: {target.parameters:,} parameters, {target.tokens_per_epoch:,} tokens/epoch, "
         f"loss {target.final_loss:.3f}, {target.seconds:.0f}s")
    reference = train_causal_lm(docs, tokenizer, config.train, work / "reference", desc="train reference")
    _say(f"reference (no canaries): loss {reference.final_loss:.3f}, {reference.seconds:.0f}s")

    target_b, ref_b = HFBackend(target.path, progress=True), HFBackend(reference.path, progress=True)
    tspec, rspec = f"hf:{target.path}", f"hf:{reference.path}"
    audits = [
        run_audit("canary-rank", AuditContext(planted, str(work / "canaries.json"), target_b, tspec, ref_b, rspec),
                  title="target model vs planted canaries"),
        run_audit("canary-rank", AuditContext(planted, str(work / "canaries.json"), ref_b, rspec),
                  title="reference model (never saw the canaries) vs planted canaries", role="null-control"),
        run_audit("canary-rank", AuditContext(fresh, str(work / "never-planted-canaries.json"), target_b, tspec),
                  title="target model vs a canary set that was never planted", role="null-control"),
    ]
    notes = [
        f"Demo corpus: {len(docs)} docstrings of the Python {__import__('sys').version.split()[0]} "
        "standard library (read from its source files, present wherever Python is installed).",
        "The demo derives its canary seeds from --seed so its numbers are reproducible; a real "
        "canary set is drawn with fresh secret randomness by `tdp canaries new`.",
        f"Training config: {json.dumps(asdict(config.train))}.",
        f"Total demo time: {time.time() - t0:.0f} s.",
    ]
    report = make_report("tdp demo: planted canaries, trained model, exact proof", audits, notes)
    write_report(report, out, force=True)  # a rerun of the demo regenerates its own output
    for a in audits:
        _say(f"{a.title}: primary p = {a.primary.result.pvalue:.3g} ({a.role})")
    _say(f"report: {out / 'report.html'} ({time.time() - t0:.0f} s)")
    return report
