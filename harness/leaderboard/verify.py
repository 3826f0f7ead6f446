"""`tdp verify` on a leaderboard: every cell's report verified as a report is (its own checks,
re-scoring included), and every number the leaderboard shows recomputed from the reports."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from harness.leaderboard.table import (
    CellSummary,
    cells_digest,
    load_leaderboard,
    summarize_report,
    with_holm,
)
from harness.verify.checks import Check

#: fields of a cell summary compared with the value recomputed from its report
COMPARED = ("test", "score", "kind", "pvalue", "log10_pvalue", "holm_log10", "auc", "auc_ci",
            "best_score", "blind", "blind_auc", "blind_ci", "shifted", "audit_digest")


def is_leaderboard(path: str | Path) -> bool:
    p = Path(path)
    return (p / "leaderboard.json").is_file() if p.is_dir() else p.name == "leaderboard.json"


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) or (x != x and y != y)
    return x == y


def _cell_options(options: Any, commitments: dict[Path, str], report: Any) -> Any:
    """The verify options of one cell: only the canary files and published commitments of its
    own audit (the others belong to other cells, not to this report)."""
    mine = {a.canary_set.commitment for a in report.audits if a.canary_set is not None}
    files = tuple(p for p, c in commitments.items() if c in mine)
    published = tuple(c for c in options.commitments if c.lower() in mine)
    return replace(options, canaries=files, commitments=published)


def _commitments(paths: tuple[Path, ...]) -> tuple[dict[Path, str], list[Check]]:
    from canaries.canary_set import CanarySetError, load_canary_set

    out, bad = {}, []
    for p in paths:
        try:
            out[Path(p)] = load_canary_set(p).commitment
        except CanarySetError as e:
            bad.append(Check("leaderboard", "canary file", "FAIL", str(e)))
    return out, bad


def verify_leaderboard(path: str | Path, options: Any) -> list[Check]:
    """Checks of the leaderboard itself, then of every cell (prefixed by the cell's id)."""
    from harness.results import ReportError, load_report
    from harness.verify import verify_report

    folder, d = load_leaderboard(path)
    cells = d.get("cells", [])
    out = [_seal(d)]
    commitments, bad = _commitments(tuple(options.canaries))
    out += bad
    fresh: list[CellSummary] = []
    used: set[Path] = set()
    for c in cells:
        cid = c["id"]
        if c["status"] != "done":
            out.append(Check(cid, "cell", "FAIL", f"cell {c['status']}: {c.get('error', '')}"))
            continue
        file = folder / c["report"]
        try:
            sha = hashlib.sha256(file.read_bytes()).hexdigest()
            report = load_report(file)
        except (OSError, ReportError) as e:
            out.append(Check(cid, "report file", "FAIL", f"cannot read {file}: {e}"))
            continue
        out.append(Check(cid, "report file", "ok" if sha == c["report_sha256"] else "FAIL",
                         "report.json is the one the leaderboard digested" if sha ==
                         c["report_sha256"] else "report.json differs from its digest"))
        opts = _cell_options(options, commitments, report)
        used.update(opts.canaries)
        out += [Check(f"{cid} | {k.audit}", k.name, k.verdict, k.detail)
                for k in verify_report(report, opts)]
        fresh.append(summarize_report(cid, c["model"], c["task"], report, c["report"], sha))
    for p in set(commitments) - used:
        out.append(Check("leaderboard", "canary file", "FAIL",
                         f"{p}: its commitment belongs to no cell of this leaderboard"))
    out.append(_numbers(cells, with_holm(fresh)))
    return out


def _seal(d: dict[str, Any]) -> Check:
    config = d.get("config", {})
    ok_cells = cells_digest(d.get("cells", [])) == d.get("cells_sha256")
    ok_config = hashlib.sha256(str(config.get("text", "")).encode()).hexdigest() == config.get(
        "sha256")
    if ok_cells and ok_config:
        return Check("leaderboard", "digest", "ok", "cells and config match their digests (a seal "
                     "against careless edits; the numbers are recomputed below)")
    return Check("leaderboard", "digest", "FAIL", "cells or config do not match their digests")


def _numbers(stored: list[dict[str, Any]], fresh: list[CellSummary]) -> Check:
    """Every shown number (p, Holm across the grid, AUC, intervals, shift flag) from the reports."""
    by = {c["id"]: c for c in stored}
    problems = []
    for f in fresh:
        s, again = by[f.id], asdict(f)
        problems += [f"{f.id}: {k} shown {s.get(k)!r}, from the report {again[k]!r}"
                     for k in COMPARED if not _same(s.get(k), again[k])]
    if len(fresh) < sum(c["status"] == "done" for c in stored):
        problems.append("not every finished cell could be recomputed (see above)")
    if problems:
        return Check("leaderboard", "numbers", "FAIL", "; ".join(problems[:5]))
    return Check("leaderboard", "numbers", "ok", f"{len(fresh)} cells' p-values, Holm-adjusted "
                 "p-values across the grid, AUCs, intervals and shift flags recomputed from "
                 "their reports")
