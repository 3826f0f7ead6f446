"""Timing of the RFC 3161 path with the local openssl TSA: one table of median milliseconds.

Rows: LocalTSA.create (CA + TSA certificate, EC P-256), timestamp_request, stamp (one
`openssl ts -reply` process), record_from_reply (verifies), verify_record (offline check).

Run: `PYTHONPATH=. python bench/timestamp_timing.py [--repeats 30]`.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.protocol.local_tsa import LocalTSA
from harness.protocol.timestamp import record_from_reply, timestamp_request, verify_record


def _median_ms(fn: Callable[[int], object], repeats: int) -> float:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    repeats = parser.parse_args().repeats
    digest = hashlib.sha256(b"bench commitment").hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {
            "LocalTSA.create": _median_ms(lambda i: LocalTSA.create(Path(tmp) / f"t{i}"), repeats)
        }
        tsa = LocalTSA(Path(tmp) / "t0")
        request = timestamp_request(digest)
        reply = tsa.stamp(request)
        record = record_from_reply(reply, digest, tsa.chain_pem, request)
        rows["timestamp_request"] = _median_ms(lambda i: timestamp_request(digest), repeats)
        rows["stamp (openssl ts -reply)"] = _median_ms(lambda i: tsa.stamp(request), repeats)
        rows["record_from_reply"] = _median_ms(
            lambda i: record_from_reply(reply, digest, tsa.chain_pem, request), repeats
        )
        rows["verify_record"] = _median_ms(lambda i: verify_record(record, digest), repeats)
    print(f"| step | median ms ({repeats} runs) |\n|---|---:|")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.3f} |")


if __name__ == "__main__":
    main()
