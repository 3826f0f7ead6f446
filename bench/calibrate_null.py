"""Null calibration at scale: >= 10,000 null audits scored by a real tiny model.

Scores one pool of fresh generator draws once (harness/calibrate.py says why disjoint groups
of one pool are independent null audits), then prints, per test, the rejection rate at each
alpha with its 99% Clopper-Pearson interval and the test's exact level under H0. The same
pool is regrouped for the single-canary rank test and the set-mean test (fewer, larger
audits); groupings share items, so they are not independent of each other, only within.

    nice -n 10 .venv/bin/python bench/calibrate_null.py --audits 10000 --out results/calibration/bench
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from canaries.generators import words_spec
from harness.backends import load_backend
from harness.calibrate import (
    CalibrationConfig,
    calibrate_pool,
    default_null_model,
    score_pool,
    table_markdown,
    write_calibration,
)

ALPHAS = (0.001, 0.01, 0.05, 0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model spec (default: the cached tiny null model)")
    ap.add_argument("--cache-dir", default=".tdp-cache")
    ap.add_argument(
        "--audits", type=int, default=10_000, help="rank-sum audits (pool = audits x (k + m))"
    )
    ap.add_argument("-k", type=int, default=4)
    ap.add_argument("-m", type=int, default=16)
    ap.add_argument("--length", type=int, default=6, help="words per item")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", default="bench-0")
    ap.add_argument("--out", default="results/calibration/bench")
    args = ap.parse_args()

    t0 = time.time()
    model = (
        args.model
        or default_null_model(args.cache_dir, progress=False) + f",batch_size={args.batch_size}"
    )
    backend = load_backend(model)
    n = args.audits * (args.k + args.m)
    pool = score_pool(backend, model, words_spec(args.length), n, args.seed)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    np.save(Path(args.out) / "pool_scores.npy", pool.scores)  # regroup later without rescoring
    s = pool.seconds
    print(
        f"pool: {n:,} items of {args.length} words, drawn in {s['draw']:.1f} s, scored in {s['score']:.1f} s "
        f"({n / s['score']:,.0f} items/s) by {model}"
    )
    configs = [
        CalibrationConfig(
            audits=args.audits,
            k=args.k,
            m=args.m,
            statistic="rank-sum",
            alphas=ALPHAS,
            seed=args.seed,
        ),
        CalibrationConfig(
            audits=n // 100, k=1, m=99, statistic="rank", alphas=ALPHAS, seed=args.seed
        ),
        CalibrationConfig(
            audits=n // 200, k=2, m=99, statistic="set-mean", alphas=ALPHAS, seed=args.seed
        ),
    ]
    for cfg in configs:
        result = calibrate_pool(pool, cfg)
        write_calibration(result, Path(args.out) / f"{cfg.statistic}-k{cfg.k}-m{cfg.m}")
        print(f"\n## {cfg.statistic}, K={cfg.k}, M={cfg.m}: {cfg.audits:,} disjoint null audits\n")
        print(table_markdown(result))
    print(
        f"\ntotal {time.time() - t0:.0f} s; command: nice -n 10 .venv/bin/python "
        f"{' '.join(shlex.quote(a) for a in sys.argv)}"
    )


if __name__ == "__main__":
    main()
