"""Time a leaderboard grid with 1 and N worker processes (one model per process at a time).

The models must be built (`tdp leaderboard build CONFIG`). Every run writes into a fresh
folder with no score cache, so each one scores every cell from scratch; the build is not timed.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/leaderboard_workers.py \
        [--config configs/leaderboard-cpu.toml] [--workers 1,2] [--threads 1]

`--threads` fixes torch threads per worker (default: the CPU cores split between workers). On
a shared machine one thread per process is far faster for tiny models than two contended ones,
so compare like with like.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from harness.leaderboard.config import load_config
from harness.leaderboard.runner import run_leaderboard
from harness.leaderboard.workers import plan_workers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/leaderboard-cpu.toml")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    config = load_config(args.config)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tdp-bench-lb-") as tmp:
        for n in [int(w) for w in args.workers.split(",")]:
            plan = plan_workers(n)
            if args.threads:
                plan = replace(plan, threads=args.threads)
            run, cells = run_leaderboard(config, Path(tmp) / f"w{n}", plan, None, 4096,
                                         progress=False)
            assert not run.failed, run.failed
            rows.append((n, plan.describe(), run.cells, run.seconds))
    base = rows[0][3]
    print(f"\ncpus: {os.cpu_count()} | grid: {rows[0][2]} cells, {len(config.models)} models\n")
    print("| workers | how | seconds | cells/min | speed-up |")
    print("|---|---|---|---|---|")
    for n, how, cells, sec in rows:
        print(f"| {n} | {how} | {sec:.0f} | {60 * cells / sec:.1f} | {base / sec:.2f}x |")


if __name__ == "__main__":
    main()
