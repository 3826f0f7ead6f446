"""The repudiation stress test on a tiny GPT-2 trained here with PoL logging (CPU, minutes).

Builds the world (stdlib docstrings: even-numbered ones are members, odd ones non-members;
K random-word canaries planted r times in the members), trains with PoL logging, then runs
`tdp audit --task repudiation` through the Python API and writes to --out:
results.json (setup + the stress test's full result), RESULTS.md (tables), report/ (the
audit report, whose notes carry the "repudiation stress test: ..." line).

    OMP_NUM_THREADS=1 nice -n 10 python bench/repudiation.py [--quick] [--out DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from canaries.canary_set import Plan, new_canary_set, save_canary_set
from canaries.drbg import derive_seed
from canaries.generators import words_spec
from canaries.inject import inject_texts
from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer
from harness.train.pol import PoLOptions


@dataclass(frozen=True)
class Setup:
    """Everything that defines the run (recorded in results.json)."""

    corpus_bytes: int = 80_000
    vocab: int = 512
    canaries: int = 6
    canary_words: int = 6
    repeat: int = 8
    counterfactuals: int = 100
    train: TrainConfig = TrainConfig(n_layer=1, n_embd=64, n_head=2, block_size=64, epochs=12,
                                     batch_size=16, lr=5e-3, warmup_steps=10)
    checkpoint_every: int = 3
    natural: int = 8
    common: int = 5
    fpr: float = 0.1
    kappa: int = 2
    mu: int = 16
    lam: int = 1
    calibrate: int = 4
    factor: float = 10.0


QUICK = Setup(corpus_bytes=40_000, vocab=384, canaries=4, repeat=8, counterfactuals=30,
              train=TrainConfig(n_layer=1, n_embd=32, n_head=2, block_size=32, epochs=3,
                                batch_size=16, lr=5e-3, warmup_steps=5),
              natural=3, mu=4, calibrate=2)


def build_world(setup: Setup, work: Path) -> dict[str, Any]:
    """Corpus split, canary set, injected training corpus, tokenizer, model with its PoL log."""
    docs = stdlib_docstrings(max_bytes=setup.corpus_bytes)
    members, nonmembers = docs[0::2], docs[1::2]
    plan = Plan(score="loss", statistic="rank-sum", counterfactuals=setup.counterfactuals,
                alpha=0.01)
    spec = words_spec(setup.canary_words)
    cs, seed = new_canary_set(spec, setup.canaries, plan, seed=derive_seed("bench-repud", "1"))
    save_canary_set(cs, work / "canaries.json", seed)
    injected, _ = inject_texts(members, cs, setup.repeat, derive_seed("bench-repud-inject", "1"))
    (work / "nonmembers.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in nonmembers), "utf-8")
    tok = train_tokenizer(members, setup.vocab)
    trained = train_causal_lm(injected, tok, setup.train, work / "model", progress=False,
                              pol=PoLOptions(work / "pol", setup.checkpoint_every, force=True))
    hosts = sum(any(c.text in t for c in cs.canaries) for t in injected)
    return {"members": len(members), "nonmembers": len(nonmembers), "canary_hosts": hosts,
            "training_seconds": round(trained.seconds, 1), "steps": trained.steps,
            "parameters": trained.parameters, "blocks": trained.tokens_per_epoch
            // setup.train.block_size}


VARIANTS = {"kong": False, "swap": True}  # the paper's candidates; the stronger swap forger


def run(setup: Setup, out: Path, work: Path, variants: tuple[str, ...]) -> dict[str, Any]:
    """Build the world once, run the repudiation task per forger variant, measure matching."""
    from harness.audit import audit_from_paths, make_report
    from harness.report import write_report

    t0 = time.time()
    world = build_world(setup, work)
    world["segment_update"] = update_scale(work)
    runs = {}
    for name in variants:
        options = {"log": str(work / "pol"), "nonmembers": str(work / "nonmembers.jsonl"),
                   "work": str(work / f"stress-{name}"), "natural": setup.natural,
                   "common": setup.common, "fpr": setup.fpr, "kappa": setup.kappa,
                   "mu": setup.mu, "lam": setup.lam, "calibrate": setup.calibrate,
                   "factor": setup.factor, "swap": VARIANTS[name]}
        t1 = time.time()
        audit = audit_from_paths(f"hf:{work / 'model'},dtype=float32,device=cpu",
                                 work / "canaries.json", "repudiation", options=options,
                                 progress=False)
        write_report(make_report(f"repudiation stress test (bench, {name})", [audit]),
                     out / f"report-{name}", True)
        stress = json.loads((work / f"stress-{name}" / "stress.json").read_text())
        runs[name] = {"stress": stress, "seconds": round(time.time() - t1, 1),
                      "note": audit.notes[-1]}
    body = {"setup": asdict(setup), "world": world, "runs": runs,
            "matching": matching(work, setup), "seconds_total": round(time.time() - t0, 1),
            "machine": platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "command": "OMP_NUM_THREADS=1 nice -n 10 python bench/repudiation.py"}
    (out / "results.json").write_text(json.dumps(body, indent=1) + "\n")
    (out / "RESULTS.md").write_text(results_markdown(body))
    return body


def update_scale(work: Path) -> dict[str, float]:
    """How large an honest segment's update is (the scale a tolerance must be read against)."""
    from statistics import median

    from harness.repudiation.replay import run_from_log
    from harness.train.pol import load_log
    from harness.train.state import parameter_distance

    run = run_from_log(load_log(work / "pol"))
    sizes = [parameter_distance(run.load_state(a), run.load_state(b)) for a, b in run.segments()]
    return {"median": median(sizes), "min": min(sizes), "max": max(sizes)}


def matching(work: Path, setup: Setup) -> dict[str, Any]:
    """The gradient-matching curve for the first canary-free member document and canary 1."""
    from canaries.canary_set import load_canary_set
    from harness.repudiation.matching import matching_curve
    from harness.repudiation.por import locate_targets
    from harness.repudiation.replay import run_from_log
    from harness.repudiation.targets import log_tokenizer, member_documents
    from harness.train.pol import load_log

    log = load_log(work / "pol")
    canary = load_canary_set(work / "canaries.json").canaries[0].text
    planted = [c.text for c in load_canary_set(work / "canaries.json").canaries]
    doc = next(t for _, t in member_documents(log, log_tokenizer(log))
               if not any(c in t for c in planted))
    run, out = run_from_log(log), {}
    for label, text in (("natural document", doc), ("canary", canary)):
        blocks = locate_targets(log, [text])[0].blocks
        curve = matching_curve(run, blocks, probes=4, candidates=64, seed=setup.train.seed)
        out[label] = asdict(curve) | {"blocks": len(blocks)}
    return out


def results_markdown(body: dict[str, Any]) -> str:
    """RESULTS.md: setup, per forger variant the per-class tables and every PoR, matching."""
    s, w = body["setup"], body["world"]
    lines = [
        "# Repudiation stress test on a tiny GPT-2 (generated by bench/repudiation.py)",
        "",
        f"Model: GPT-2, {s['train']['n_layer']} layer, d={s['train']['n_embd']}, "
        f"{w['parameters']:,} parameters, trained here on CPU with PoL logging "
        f"(AdamW, lr {s['train']['lr']}, linear warmup/decay, batch {s['train']['batch_size']} "
        f"blocks of {s['train']['block_size']} tokens, {s['train']['epochs']} epochs = "
        f"{w['steps']} steps τ, checkpoint every {s['checkpoint_every']} steps). Data: "
        f"{w['members']} stdlib docstrings as members ({w['blocks']} blocks), {w['nonmembers']} "
        f"as non-members; {s['canaries']} random {s['canary_words']}-word canaries planted "
        f"{s['repeat']}× each (in {w['canary_hosts']} member documents, not used as natural "
        "targets). MI attack: loss threshold at FPR "
        f"{s['fpr']} on non-members, rerun on each forged model. Forger: Kong et al. "
        f"Algorithm 2/3, κ={s['kappa']}, μ={s['mu']}, λ={s['lam']}, plus one PoR for the whole "
        "canary set. Command: `" + body["command"] + "`; total wall time "
        f"{body['seconds_total']:.0f} s on one {body['machine']} core shared with other jobs.",
    ]
    for name, r in body["runs"].items():
        lines += ["", *_run_section(name, r, s, w)]
    lines += ["", *_matching_section(body["matching"])]
    return "\n".join(lines) + "\n"


def _run_section(
    name: str, r: dict[str, Any], s: dict[str, Any], w: dict[str, Any]
) -> list[str]:
    from harness.repudiation.stress_report import markdown_table

    st, c = r["stress"], r["stress"]["compute"]
    nan = float("nan")
    upd = w.get("segment_update", {"median": nan, "min": nan, "max": nan})
    forge = c["forge_search_gradients"] + c["forge_trajectory_steps"] + c["reconstruction_steps"]
    what = ("the paper's candidates (whole new minibatches)" if name == "kong" else
            "swap candidates (B_t with only the target's blocks redrawn; stronger than the paper)")
    lines = [
        f"## Forger `{name}`: {what}",
        "",
        f"Tolerance {st['tolerance']:.3g} = {s['factor']:g} × the largest honest-replay "
        f"disagreement over {s['calibrate']} segments (gradient summed in 2 and 4 parts).",
        "",
        markdown_table(st["summary"]),
        "",
        f"- Honest log: verifies ({st['honest_valid']}), largest replay error "
        f"{st['honest_max_error']:.3g}; a full honest rerun in the other summation order ends "
        f"{st['honest_rerun_distance']:.3g} from θ (‖θ‖ = {st['theta_norm']:.3g}). An honest "
        f"segment's update ‖θ_(i+1)−θ_i‖ is {upd['min']:.3g}–{upd['max']:.3g} (median "
        f"{upd['median']:.3g}): the tolerance is {st['tolerance'] / upd['median']:.1e} of the "
        "median update.",
        f"- MI attack on θ: {st['natural_called_members']} of {st['natural_candidates']} "
        f"canary-free member documents called members; {st['canaries_called_members']} of "
        f"{st['canaries']} canaries. Canary test on θ: log10 p = "
        f"{st['theta_canary_log10_p']:.1f} (rank-sum on loss, {s['counterfactuals']} "
        "counterfactuals).",
        f"- Compute (gradient evaluations on one minibatch, the paper's unit): search "
        f"{c['forge_search_gradients']:,} ({c['forge_searched_step_splits']} (step, split) pairs "
        f"× (μ + the original gradient); κμτ = {c['paper_precompute_kappa_mu_tau']:,} for "
        f"Algorithm 2 over all n points), honest trajectory {c['forge_trajectory_steps']}, "
        f"reconstruction of θ' {c['reconstruction_steps']:,}: {forge:,} to forge; verifying the "
        f"forged logs ≤ {c['forged_verification_steps']:,} steps; calibration "
        f"{c['calibration_steps']} steps. Wall time {r['seconds']:.0f} s.",
        f"- The report's note: {r['note']}",
        "",
        "| PoR | class | targets | re-batched steps | segments failing / replayed | max error "
        "/ tol | gradient gap | ‖θ−θ'‖ | Diff | Common | called | Validation | canary "
        "log10 p on θ' |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in st["rows"]:
        p = "—" if row["canary_log10_p"] is None else f"{row['canary_log10_p']:.1f}"
        lines.append(
            f"| {row['por']} | {row['cls']} | {row['targets']} | {row['forged_steps']} | "
            f"{row['failed_segments']}/{row['replayed_segments']} | "
            f"{row['max_error_over_tolerance']:.3g} | {row['median_gradient_gap']:.2f} | "
            f"{row['distance']:.3g} | {row['diff_flips']}/{row['targets']} | "
            f"{row['common_flips']}/{row['common_n']} | {row['called_flips']}/{row['called_n']} "
            f"| {row['validation_flips']}/{row['validation_n']} | {p} |")
    return lines


def _matching_section(m: dict[str, Any]) -> list[str]:
    lines = ["## Can gradients be matched at all? (harness.repudiation.matching)", "",
             "Mean over 4 steps that held the target of the best ‖g(B')−g(B_t)‖/‖g(B_t)‖ "
             "among the first μ of 64 candidates.", "",
             "| target | blocks | candidates | " + " | ".join(
                 f"μ={mu}" for mu in next(iter(m.values()))["mus"]) + " |",
             "|---|---:|---|" + "---:|" * len(next(iter(m.values()))["mus"])]
    for label, c in m.items():
        for kind, key in (("new minibatch (paper)", "new_batch"), ("swap", "swap")):
            lines.append(f"| {label} | {c['blocks']} | {kind} | "
                         + " | ".join(f"{g:.3f}" for g in c[key]) + " |")
    return lines


def resummarize(out: Path, work: Path | None) -> None:
    """Rewrite results.json's per-class summary and RESULTS.md from the stored rows (and the
    update scale from WORK's log, if it is missing)."""
    from harness.repudiation.stress_report import summarize

    body = json.loads((out / "results.json").read_text())
    if "segment_update" not in body["world"] and work is not None:
        body["world"]["segment_update"] = update_scale(work)
    for r in body["runs"].values():
        r["stress"] = summarize(r["stress"])
    (out / "results.json").write_text(json.dumps(body, indent=1) + "\n")
    (out / "RESULTS.md").write_text(results_markdown(body))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (seconds)")
    ap.add_argument("--out", type=Path, default=Path("results/repudiation"))
    ap.add_argument("--work", type=Path, default=None, help="logs, models (default: a temp dir)")
    ap.add_argument("--forgers", default="kong,swap", help="forger variants to run: kong,swap")
    ap.add_argument("--resummarize", action="store_true",
                    help="recompute the summary and RESULTS.md from OUT/results.json only")
    args = ap.parse_args()
    if args.resummarize:
        resummarize(args.out, args.work)
        return
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("harness.repudiation").setLevel(logging.INFO)
    setup = QUICK if args.quick else Setup()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="tdp-repudiation-"))
    work.mkdir(parents=True, exist_ok=True)
    body = run(setup, args.out, work, tuple(args.forgers.split(",")))
    print((args.out / "RESULTS.md").read_text())
    print(f"total {body['seconds_total']:.0f} s; work folder {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
