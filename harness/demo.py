"""`tdp demo`: the protocol-v2 chain end to end on a tiny model trained here.

corpus -> reference model -> commitments (reference committed by identity) -> RFC 3161 timestamps
from a local test TSA -> a local test beacon round derives the canaries -> planting -> target
model -> audits -> report -> `tdp verify`. Everything runs offline on a CPU in a few minutes;
the local TSA and beacon stand in for a real TSA and drand, and the report says so. The demo
derives its secrets from `--seed` so that its numbers are reproducible; a real canary set draws
fresh secret randomness (`tdp canaries new`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from canaries.canary_set import CanarySet, Plan, save_canary_set
from canaries.corpus import Corpus, read_corpus, write_corpus
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
    """Sizes of the embedded demo; the defaults finish in a few minutes on 2 CPU cores."""

    corpus_bytes: int = 300_000
    vocab_size: int = 2048
    canaries: int = 32
    canary_length: int = 10
    repeat: int = 8
    counterfactuals: int = 500
    alpha: float = 0.01
    seed: int = 0
    beacon_delay_s: float = 5.0  # the local TSA's token is good to +2 s (resolution + accuracy)
    train: TrainConfig = field(default_factory=TrainConfig)


def _say(msg: str) -> None:
    print(f"[tdp demo] {msg}", flush=True)


def local_protocol(work: Path, seed: str):
    """A local test TSA and a local test beacon whose key derives from the demo seed."""
    from harness.protocol.bls import curve_order
    from harness.protocol.local_beacon import LocalTestBeacon
    from harness.protocol.local_tsa import LocalTSA

    key = int.from_bytes(derive_seed("demo-beacon", seed), "big") % (curve_order - 1) + 1
    beacon = LocalTestBeacon(key, "local-demo", int(time.time()), 1)
    tsa_dir = work / "local-tsa"
    tsa = LocalTSA(tsa_dir) if (tsa_dir / "tsa.pem").exists() else LocalTSA.create(tsa_dir)
    return tsa, beacon


def committed_sets(
    config: DemoConfig, reference_identity: dict[str, str], work: Path
) -> tuple[CanarySet, CanarySet]:
    """Two v2 sets (one to plant, one never planted): committed, timestamped, assigned."""
    from harness.protocol.beacon import round_time
    from harness.protocol.pool import add_timestamp, assign, commit
    from harness.protocol.timestamp import record_from_reply, timestamp_request

    spec = words_spec(config.canary_length)
    plan = Plan(score="loss", statistic="rank-sum", counterfactuals=config.counterfactuals,
                alpha=config.alpha, reference=reference_identity)
    tsa, beacon = local_protocol(work, str(config.seed))
    out = []
    for name, label in (("canaries.json", "demo-canaries"), ("never-planted-canaries.json", "demo-fresh")):
        secret = derive_seed(label, str(config.seed))
        # dated at the beacon's genesis (whole seconds, at most a second before now), the pinned
        # round is the same on every run, hence the same pool: the demo's numbers reproduce
        cs, _ = commit(spec, config.canaries, plan, beacon.chain, config.beacon_delay_s, secret,
                       now=float(beacon.genesis_time))
        request = timestamp_request(cs.commitment)
        cs, _ = add_timestamp(cs, record_from_reply(tsa.stamp(request), cs.commitment,
                                                    tsa.chain_pem, request))
        out.append((name, cs, secret))
    wait = max(round_time(beacon.chain, cs.beacon["round"]) for _, cs, _ in out) - time.time()
    time.sleep(max(0.0, wait + 0.05))  # the pinned rounds must be "published" before use
    done = []
    for name, cs, secret in out:
        cs = assign(cs, secret, beacon.sign(int(cs.beacon["round"])))
        save_canary_set(cs, work / name, secret)
        done.append(cs)
    return done[0], done[1]


def demo_signing_key(work: Path, seed: int) -> tuple[Path, str]:
    """The demo's evidence signing key, derived from `--seed` (reproducible; a real signer uses
    `tdp evidence keygen`), written to `work/evidence-key.pem`; returns (path, fingerprint)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from harness.evidence.signing import key_fingerprint, write_key

    key = Ed25519PrivateKey.from_private_bytes(derive_seed("demo-evidence-key", str(seed))[:32])
    path, _ = write_key(key, work / "evidence-key.pem", force=True)
    return path, key_fingerprint(key.public_key())


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
    tokenizer = train_tokenizer(docs, config.vocab_size)  # trained on clean text: no canary merges
    reference = train_causal_lm(docs, tokenizer, config.train, work / "reference", desc="train reference")
    _say(f"reference (clean corpus): loss {reference.final_loss:.3f}, {reference.seconds:.0f}s")
    ref_b = HFBackend(reference.path, progress=True)
    rspec = f"hf:{reference.path}"
    ref_identity = {"spec": rspec, "identity": ref_b.fingerprint().identity_digest()}

    planted, fresh = committed_sets(config, ref_identity, work)
    _say(f"committed, timestamped (local test TSA) and assigned (local test beacon) two sets; "
         f"commitment {planted.commitment[:16]}...")
    manifest = inject_corpus(work / "corpus.jsonl", planted, config.repeat, work / "corpus-injected.jsonl",
                             seed=derive_seed("demo-inject", str(config.seed)), force=True)
    _say(f"planted {config.canaries} canaries x{config.repeat} ({len(manifest.insertions)} insertions)")

    injected = read_corpus(work / "corpus-injected.jsonl").texts
    target = train_causal_lm(injected, tokenizer, config.train, work / "target", desc="train target")
    _say(f"target: {target.parameters:,} parameters, {target.tokens_per_epoch:,} tokens/epoch, "
         f"loss {target.final_loss:.3f}, {target.seconds:.0f}s")

    target_b = HFBackend(target.path, progress=True)
    tspec = f"hf:{target.path}"
    cpath, fpath = str(work / "canaries.json"), str(work / "never-planted-canaries.json")
    audits = [
        run_audit("canary-rank", AuditContext(planted, cpath, target_b, tspec, ref_b, rspec),
                  title="target model vs planted canaries"),
        run_audit("canary-rank", AuditContext(planted, cpath, ref_b, rspec),
                  title="reference model (never saw the canaries) vs planted canaries", role="null-control"),
        run_audit("canary-rank", AuditContext(fresh, fpath, target_b, tspec),
                  title="target model vs a canary set that was never planted", role="null-control"),
    ]
    notes = [
        f"Demo corpus: {len(docs)} docstrings of the Python {sys.version.split()[0]} "
        "standard library (read from its source files, present wherever Python is installed).",
        "Protocol v2 with LOCAL TEST stand-ins: the timestamps come from a local openssl TSA and the "
        "beacon round from a local key, so neither proves time or public randomness; a real claim "
        "uses a TSA and drand (README, 'Protocol v2 in five commands').",
        "The demo derives its secrets and its beacon key from --seed so its numbers are "
        "reproducible; a real canary set draws fresh secret randomness (`tdp canaries new`).",
        f"Training config: {json.dumps(asdict(config.train))}.",
        f"Total demo time: {time.time() - t0:.0f} s.",
    ]
    report = make_report("tdp demo: planted canaries, trained model, exact proof", audits, notes)
    write_report(report, out, force=True)  # a rerun of the demo regenerates its own output
    for a in audits:
        _say(f"{a.title}: primary p = {a.primary.result.pvalue:.3g} ({a.role})")
    _say(f"report: {out / 'report.html'} ({time.time() - t0:.0f} s)")
    _say(f"verify it: tdp verify {out} --canaries {cpath} --canaries {fpath}")
    return report
