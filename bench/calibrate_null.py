"""Null calibration at scale: >= 10,000 null audits with scores from a real tiny model.

Usage:
  nice -n 10 .venv/bin/python bench/calibrate_null.py [--audits 10000] [--out results/calibrate-10k]
Prints the rejection-rate table; exit 1 if any rate at alpha 0.01 / 0.05 falls outside the 99%
binomial interval of its test's exact size.
"""

from __future__ import annotations

import argparse
import sys
import time

from harness.backends import load_backend
from harness.calibrate import CalibrationConfig, markdown_table, run_calibration
from harness.tiny import tiny_model


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--audits", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--m", type=int, default=20)
    ap.add_argument("--out", default="results/calibrate-10k")
    ap.add_argument("--seed", default="", help="hex pool seed (default: fresh)")
    args = ap.parse_args()
    t0 = time.time()
    spec = f"hf:{tiny_model(progress=False)}"
    cfg = CalibrationConfig(audits=args.audits, k=args.k, m=args.m)
    res = run_calibration(
        load_backend(spec), spec, cfg, args.out, bytes.fromhex(args.seed) if args.seed else None
    )
    print(markdown_table(res["rows"]))
    key = [r for r in res["rows"] if r["alpha"] in (0.01, 0.05) and r["exact_size"] > 0]
    bad = [r for r in key if not r["inside_null99"]]
    print(
        f"{args.audits} audits x {args.k + args.m} items scored once, {time.time() - t0:.0f} s; "
        f"alpha 0.01/0.05 cells inside their 99% binomial interval: {len(key) - len(bad)}/{len(key)}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
