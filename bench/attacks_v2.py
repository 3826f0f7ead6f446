"""The three interested-party attacks of issue 8, rerun against protocol v2 (and v1 for contrast).

On tiny CPU models that never saw any canary (so every small p is a false positive):
1. owner selection: draw 1,000 canaries, keep the 16 a sibling model scores highest;
2. auditor seed shopping: junk files added to the model folder, 40 variants;
3. crafted reference: a reference model trained on the (computable) counterfactuals.
Writes results/attacks-v2/RESULTS.md and results.json. ~3-5 min on 2 CPU cores.

    OMP_NUM_THREADS=1 .venv/bin/python bench/attacks_v2.py [--out results/attacks-v2]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from canaries.canary_set import CanarySet, Plan, save_canary_set
from canaries.drbg import HashDRBG, derive_seed
from canaries.generators import draw_canaries, words_spec
from harness.audit import AuditContext, audit_seed, make_report, run_audit
from harness.backends.hf import HFBackend
from harness.protocol.beacon import round_time
from harness.protocol.local_beacon import LocalTestBeacon
from harness.protocol.local_tsa import LocalTSA
from harness.protocol.pool import add_timestamp, assign, commit
from harness.protocol.timestamp import record_from_reply, timestamp_request
from harness.scoring import ScoringRequest, score_texts
from harness.stats import PlanViolation
from harness.tiny import TINY_TRAIN, tiny_model
from harness.train import stdlib_docstrings, train_causal_lm, train_tokenizer
from harness.verify import VerifyOptions, verify_report
from harness.verify.rescore import RescorePlan

K, POOL, M = 16, 1000, 1000
SPEC = words_spec(8)


def v2_set(plan: Plan, beacon: LocalTestBeacon, tsa: LocalTSA, seed: bytes) -> CanarySet:
    cs, _ = commit(SPEC, K, plan, beacon.chain, 3.0, seed)
    req = timestamp_request(cs.commitment)
    cs, _ = add_timestamp(cs, record_from_reply(tsa.stamp(req), cs.commitment, tsa.chain_pem, req))
    time.sleep(max(0.0, round_time(beacon.chain, cs.beacon["round"]) - time.time() + 0.05))
    return assign(cs, seed, beacon.sign(int(cs.beacon["round"])))


def v1_set(canaries, plan: Plan) -> CanarySet:
    draft = CanarySet(SPEC, tuple(replace(c, id=f"canary-{i:06d}") for i, c in enumerate(canaries)),
                      plan, secrets.token_hex(32), time.strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    return replace(draft, commitment=draft.compute_commitment())


def audit(cs, path, backend, spec, ref=None, ref_spec=None):
    return run_audit("canary-rank", AuditContext(cs, str(path), backend, spec, ref, ref_spec,
                                                 progress=False))


def verify(a, path) -> list:
    opts = VerifyOptions((Path(path),), rescore=True, rescore_plan=RescorePlan(50, seed=0))
    return verify_report(make_report("attack", [a]), opts)


def summary(checks) -> str:
    bad = [f"{c.name}: {c.detail}" for c in checks if c.verdict == "FAIL"]
    opened = [c.name for c in checks if c.verdict == "open"]
    head = f"{len(bad)} FAIL" + (f" ({bad[0][:160]})" if bad else "")
    return head + (f"; open: {', '.join(opened)}" if opened else "")


def owner_selection(work: Path, audited: Path, sibling: Path, beacon, tsa) -> dict:
    sib, target = HFBackend(str(sibling)), HFBackend(str(audited))
    spec = f"hf:{audited}"
    pool = draw_canaries(SPEC, HashDRBG(derive_seed("attack-pool", "1"), "canaries"), POOL)
    loss = np.array([r["loss"] for r in score_texts([c.text for c in pool], sib,
                                                   ScoringRequest(("loss",), {}), b"o" * 32)])
    picked = [pool[i] for i in np.argsort(-loss)[:K]]  # the sibling's favourites
    plan = Plan(counterfactuals=M, alpha=0.01)
    v1 = v1_set(picked, plan)
    p1 = save_canary_set(v1, work / "v1-selected.json")  # v1 never asked for the secret
    a1 = audit(v1, p1, target, spec)
    honest = v2_set(plan, beacon, tsa, derive_seed("attack-v2", "1"))
    p2 = save_canary_set(honest, work / "v2.json", derive_seed("attack-v2", "1"))
    a2 = audit(honest, p2, target, spec)
    forged = replace(honest, canaries=tuple(replace(c, id=f"canary-{i:06d}")
                                            for i, c in enumerate(picked)))
    p3 = save_canary_set(forged, work / "v2-forged.json", derive_seed("attack-v2", "1"))
    a3 = audit(forged, p3, target, spec)
    return {
        "v1_selected": {"p": a1.primary.result.pvalue, "verify": summary(verify(a1, p1))},
        "v2_honest": {"p": a2.primary.result.pvalue, "verify": summary(verify(a2, p2))},
        "v2_selected_written_into_file": {"p": a3.primary.result.pvalue,
                                          "verify": summary(verify(a3, p3))},
    }


def seed_shopping(work: Path, audited: Path, beacon, tsa) -> dict:
    plan = Plan(counterfactuals=200, alpha=0.01)
    v1 = v1_set(draw_canaries(SPEC, HashDRBG(b"v" * 32, "canaries"), K), plan)
    v2 = v2_set(plan, beacon, tsa, derive_seed("attack-shop", "1"))
    seeds_v1, seeds_v2, pvals = set(), set(), set()
    for i in range(40):
        d = work / f"shop-{i}"
        shutil.copytree(audited, d, dirs_exist_ok=True)
        (d / f"junk-{i}.bin").write_bytes(secrets.token_bytes(64))
        b = HFBackend(str(d))
        seeds_v1.add(audit_seed(v1.commitment, b.fingerprint()).hex())
        if i < 5:  # a v2 audit draws nothing: its items and p-value cannot move
            a = audit(v2, work / "shop.json", b, f"hf:{d}")
            seeds_v2.add(a.audit_seed)
            pvals.add(a.primary.result.pvalue)
        shutil.rmtree(d)
    return {"variants": 40, "distinct_v1_audit_seeds": len(seeds_v1),
            "distinct_v2_scoring_seeds": len(seeds_v2), "distinct_v2_pvalues": len(pvals)}


def crafted_reference(work: Path, audited: Path, beacon, tsa) -> dict:
    docs = stdlib_docstrings(60_000)
    target = HFBackend(str(audited))
    honest_ref = tiny_model(work / "models", corpus_bytes=60_000,
                            train=replace(TINY_TRAIN, seed=3))
    ident = {"spec": f"hf:{honest_ref}", "identity": HFBackend(str(honest_ref)).fingerprint().identity_digest()}
    plan_v1 = Plan(score="ref_ratio", counterfactuals=200, alpha=0.01)
    v1 = v1_set(draw_canaries(SPEC, HashDRBG(b"r" * 32, "canaries"), K), plan_v1)
    seed = audit_seed(v1.commitment, target.fingerprint())  # anyone can compute it
    cfs = [c.text for c in draw_canaries(SPEC, HashDRBG(seed, "counterfactuals"), 200,
                                         exclude=v1.texts(), id_prefix="cf-")]
    tok = train_tokenizer(docs, 512)
    craft = replace(TINY_TRAIN, n_layer=2, n_embd=128, n_head=4, epochs=4)
    crafted = train_causal_lm(docs + cfs * 20, tok, craft, work / "crafted", progress=False).path
    p1 = save_canary_set(v1, work / "ref-v1.json", b"r" * 32)
    a1 = audit(v1, p1, target, f"hf:{audited}", HFBackend(crafted), f"hf:{crafted}")
    plan_v2 = replace(plan_v1, reference=ident)
    v2 = v2_set(plan_v2, beacon, tsa, derive_seed("attack-ref", "1"))
    cfs2 = [c.text for c in v2.counterfactuals]  # the auditor sees these in the canary file
    crafted2 = train_causal_lm(docs + cfs2 * 20, tok, craft, work / "crafted2", progress=False).path
    p2 = save_canary_set(v2, work / "ref-v2.json", derive_seed("attack-ref", "1"))
    try:
        audit(v2, p2, target, f"hf:{audited}", HFBackend(crafted2), f"hf:{crafted2}")
        refused = "NOT refused"
    except PlanViolation as e:
        refused = str(e)
    a3 = audit(v2, p2, target, f"hf:{audited}", HFBackend(str(honest_ref)), f"hf:{honest_ref}")
    return {
        "v1_crafted": {"p": a1.primary.result.pvalue, "kind": a1.primary.result.kind,
                       "verify": summary(verify(a1, p1))},
        "v2_crafted": refused,
        "v2_committed_reference": {"p": a3.primary.result.pvalue, "kind": a3.primary.result.kind},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("results/attacks-v2"))
    args = ap.parse_args()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        audited = tiny_model(work / "models", corpus_bytes=60_000)
        sibling = tiny_model(work / "models", corpus_bytes=90_000, train=replace(TINY_TRAIN, seed=1))
        beacon, tsa = LocalTestBeacon.create(), LocalTSA.create(work / "tsa")
        result = {
            "owner_selection": owner_selection(work, audited, sibling, beacon, tsa),
            "seed_shopping": seed_shopping(work, audited, beacon, tsa),
            "crafted_reference": crafted_reference(work, audited, beacon, tsa),
            "seconds": round(time.time() - t0),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    o, s, r = result["owner_selection"], result["seed_shopping"], result["crafted_reference"]
    lines = [
        "# Interested-party attacks against protocol v2 (tiny CPU models that never saw a canary)",
        "",
        f"Made by `OMP_NUM_THREADS=1 .venv/bin/python bench/attacks_v2.py` in {result['seconds']} s. "
        f"K = {K} canaries of 8 words; every small p below is a false positive.",
        "",
        "| attack | protocol | primary p | `tdp verify` |",
        "|---|---|---|---|",
        f"| owner keeps the sibling's top {K} of {POOL} | v1 | {o['v1_selected']['p']:.3g} | {o['v1_selected']['verify']} |",
        f"| same {K} written into a v2 file | v2 | {o['v2_selected_written_into_file']['p']:.3g} | {o['v2_selected_written_into_file']['verify']} |",
        f"| honest v2 set, same model | v2 | {o['v2_honest']['p']:.3g} | {o['v2_honest']['verify']} |",
        f"| crafted reference (ref_ratio primary) | v1 | {r['v1_crafted']['p']:.3g} ({r['v1_crafted']['kind']}) | {r['v1_crafted']['verify']} |",
        f"| crafted reference (ref_ratio primary) | v2 | refused | {r['v2_crafted']} |",
        f"| committed reference | v2 | {r['v2_committed_reference']['p']:.3g} ({r['v2_committed_reference']['kind']}) | — |",
        "",
        f"Seed shopping: {s['variants']} copies of the model folder, each with a different junk "
        f"weight file: {s['distinct_v1_audit_seeds']} distinct v1 audit seed(s) (the identity is "
        f"the tensors' content), {s['distinct_v2_scoring_seeds']} v2 scoring seed(s) and "
        f"{s['distinct_v2_pvalues']} distinct v2 p-value(s) over 5 audits: nothing to shop.",
    ]
    (args.out / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
