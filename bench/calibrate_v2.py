"""Null calibration of protocol v2: >= 10,000 independent v2 canary sets audited on a model that
never saw any of them.

Each audit is its own v2 commitment (fresh secret seed, committed seed digest, pinned round of a
local test beacon), its own signed beacon round, and its own pool derived from the seed and the
round's randomness: the K canaries are the first K draws, the M counterfactuals the rest. Every
`--verify-every`-th set goes through the full `assign` (BLS signature checked, seed digest
checked); the others call the same derivation with the signed round's randomness (a pairing
check costs ~0.4 s and changes no item). All pools are scored in one pass through the one
scoring path (score cache: a killed run resumes), then each audit's rank-sum p-value is taken
from its own K + M scores. Writes calibration.{md,json,html} and qq.png under --out.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/calibrate_v2.py --audits 10000 \
        --out results/calibration/v2
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from canaries.canary_set import Plan, new_pool_set
from canaries.drbg import derive_seed
from canaries.generators import words_spec
from harness.backends import load_backend
from harness.cache import ScoreCache
from harness.calibrate import (
    CalibrationConfig,
    ScoredPool,
    calibrate_pool,
    default_null_model,
    table_markdown,
    write_calibration,
)
from harness.protocol.bls import curve_order
from harness.protocol.local_beacon import LocalTestBeacon
from harness.protocol.pool import assign, derive_pool
from harness.scoring import ScoringRequest, score_texts

ALPHAS = (0.001, 0.01, 0.05, 0.1)


def v2_pools(n_audits: int, k: int, m: int, length: int, label: str, verify_every: int):
    """Texts of n_audits v2 pools, audit by audit (K canaries then M counterfactuals)."""
    spec = words_spec(length)
    plan = Plan(counterfactuals=m, alpha=0.01)
    key = int.from_bytes(derive_seed("calibrate-v2-beacon", label), "big") % (curve_order - 1) + 1
    beacon = LocalTestBeacon(key, "local-calibration", int(time.time()) - n_audits - 10, 1)
    texts: list[str] = []
    verified = 0
    for i in range(n_audits):
        seed = derive_seed("calibrate-v2-secret", label, str(i))
        beacon_pin = {"chain": beacon.chain.to_dict(), "round": i + 1}
        cs, _ = new_pool_set(spec, k, k + m, plan, beacon_pin, seed, "2026-11-30T00:00:00+00:00")
        r = beacon.sign(i + 1)
        if i % verify_every == 0:  # the full protocol step, signature and seed digest checked
            cs = assign(cs, seed, r)
            canaries, rest = list(cs.canaries), list(cs.counterfactuals)
            verified += 1
        else:
            canaries, rest = derive_pool(cs, seed, r.randomness_bytes)
        texts += [c.text for c in canaries] + [c.text for c in rest]
    return texts, spec, verified


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model spec (default: the cached tiny null model)")
    ap.add_argument("--audits", type=int, default=10_000)
    ap.add_argument("-k", type=int, default=4)
    ap.add_argument("-m", type=int, default=16)
    ap.add_argument("--length", type=int, default=6)
    ap.add_argument("--label", default="v2-0")
    ap.add_argument("--verify-every", type=int, default=50)
    ap.add_argument("--cache-dir", default=".tdp-cache")
    ap.add_argument("--out", default="results/calibration/v2")
    args = ap.parse_args()
    t0 = time.time()
    texts, spec, verified = v2_pools(args.audits, args.k, args.m, args.length, args.label,
                                     args.verify_every)
    t1 = time.time()
    model = args.model or default_null_model(args.cache_dir, progress=False) + ",batch_size=256"
    backend = load_backend(model)
    seed = derive_seed("calibrate-v2-scoring", args.label)
    cache = ScoreCache(Path(args.cache_dir) / "scores", 8192)
    rows = score_texts(texts, backend, ScoringRequest(("loss",), {}), seed, cache=cache)
    t2 = time.time()
    pool = ScoredPool(
        scores=np.array([r["loss"] for r in rows]),
        seed=seed.hex(),
        model=model,
        fingerprint=backend.fingerprint().to_dict(),
        generator=spec.to_dict(),
        seconds={"protocol": t1 - t0, "score": t2 - t1, "items": float(len(texts))},
    )
    config = CalibrationConfig(audits=args.audits, k=args.k, m=args.m, statistic="rank-sum",
                               alphas=ALPHAS, seed=args.label)
    result = calibrate_pool(pool, config)
    write_calibration(result, args.out)
    print(f"{args.audits:,} v2 commitments, rounds and pools in {t1 - t0:.0f} s "
          f"({verified} through the full signature-checked assign); {len(texts):,} items scored "
          f"in {t2 - t1:.0f} s by {model}")
    print(table_markdown(result))
    print(f"total {time.time() - t0:.0f} s; command: OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python "
          f"{' '.join(shlex.quote(a) for a in sys.argv)}")


if __name__ == "__main__":
    main()
