"""Time `tdp evidence pack` and `verify` on a finished run (default: `tdp demo --evidence`'s).

    .venv/bin/python bench/evidence_bundle.py [--run results/evidence-demo] [--repeat 3]

Prints one table: bundle size, members, PDF pages, and wall seconds of pack (with and without
the PDF) and verify (without a model; with every model the run names, re-scoring 100
counterfactuals per audit). Needs the run's work/ folder (models, key, canary files, secrets).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=Path("results/evidence-demo"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import torch

    from harness.evidence.pack import PackOptions, pack
    from harness.evidence.pdf import read_pdf
    from harness.evidence.signing import load_signer
    from harness.evidence.verify import EvidenceOptions, verify_bundle
    from harness.verify.rescore import RescorePlan

    torch.set_num_threads(1)
    work = args.run / "work"
    canaries = tuple(sorted(work.glob("*canaries.json")))
    signer = load_signer(work / "evidence-key.pem")
    models = tuple(f"hf:{work / m}" for m in ("target", "reference") if (work / m).is_dir())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pdf in (True, False):
            times, result = [], None
            for i in range(args.repeat):
                out = Path(tmp) / f"b{pdf}{i}.zip"
                t0 = time.perf_counter()
                result = pack((args.run,), out, signer, PackOptions(canaries, True, pdf))
                times.append(time.perf_counter() - t0)
            pages = read_pdf(result.pdf).pages if result.pdf else 0
            rows.append((f"pack ({'with' if pdf else 'no'} PDF)", statistics.median(times),
                         f"{result.size:,} bytes, {len(result.manifest.members)} members, "
                         f"{pages} PDF pages"))
        bundle = Path(tmp) / "bTrue0.zip"
        for label, opts in (("verify (no model)", EvidenceOptions()),
                            ("verify (re-score 100 cf/audit)",
                             EvidenceOptions(models=models, rescore_plan=RescorePlan(seed=1)))):
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                checks = verify_bundle(bundle, opts)
                times.append(time.perf_counter() - t0)
            fails = sum(c.verdict == "FAIL" for c in checks)
            rows.append((label, statistics.median(times), f"{len(checks)} checks, {fails} failed"))
    print(f"| step | median s (of {args.repeat}) | result |\n|---|---:|---|")
    for label, sec, what in rows:
        print(f"| {label} | {sec:.2f} | {what} |")


if __name__ == "__main__":
    main()
