"""Seconds per offline drand round verification (py_ecc, pure Python), per scheme; prints a table.

    PYTHONPATH=. python bench/beacon_verify.py [--repeats 3]

Uses the real rounds of tests/fixtures/drand_rounds.json and a local test beacon. Wall time and
process CPU time are both shown: on a shared machine the wall time includes waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from harness.protocol.beacon import BeaconRound, get_chain, verify_round
from harness.protocol.local_beacon import LocalTestBeacon

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "drand_rounds.json"


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cases = []
    for item in json.loads(FIXTURES.read_text())["rounds"]:
        chain = get_chain(item["chain"])
        keep = {k: v for k, v in item.items() if k not in ("chain", "source", "randomness_from")}
        cases.append((chain, BeaconRound.from_dict(keep, chain_hash=chain.chain_hash)))
    made: list[LocalTestBeacon] = []
    create_wall, create_cpu = _timed(lambda: made.append(LocalTestBeacon.create()))
    local = made[0]
    sign_wall, sign_cpu = _timed(lambda: local.sign(1))
    cases.append((local.chain, local.sign(2)))

    rows: dict[str, list[tuple[float, float]]] = {}
    for chain, r in cases:
        for _ in range(args.repeats):
            rows.setdefault(f"{chain.name} ({chain.scheme})", []).append(
                _timed(lambda c=chain, rr=r: verify_round(c, rr))
            )
    print(f"{'chain (scheme)':<44} {'n':>3} {'wall s/round':>13} {'cpu s/round':>12} "
          f"{'max wall':>9}")
    for name, times in rows.items():
        walls, cpus = [w for w, _ in times], [c for _, c in times]
        print(f"{name:<44} {len(times):>3} {statistics.median(walls):>13.3f} "
              f"{statistics.median(cpus):>12.3f} {max(walls):>9.3f}")
    print(f"local beacon: create (key + public key) {create_wall:.3f} s wall, {create_cpu:.3f} s "
          f"cpu; sign one round {sign_wall:.3f} s wall, {sign_cpu:.3f} s cpu")


if __name__ == "__main__":
    main()
