"""The stress test's result as JSON, as a Markdown table, and as the one line a report carries."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from statistics import median
from typing import Any

from canaries.files import atomic_write_text
from harness.repudiation.stress import PoRRow, StressResult

CLASSES = ("natural", "canary", "all-canaries")


def stress_to_dict(result: StressResult) -> dict[str, Any]:
    d = asdict(result)
    d["rows"] = []
    for row in result.rows:
        r = asdict(row)
        r["canary_test"] = row.canary_test.to_dict() if row.canary_test else None
        r["canary_log10_p"] = row.canary_log10_p
        d["rows"].append(r)
    d["summary"] = {cls: class_summary(result, cls) for cls in CLASSES if _rows(result, cls)}
    return d


def write_stress_result(result: StressResult, path: Path) -> dict[str, Any]:
    """Write the result as JSON; returns what was written."""
    d = stress_to_dict(result)
    atomic_write_text(path, json.dumps(d, indent=1, default=float) + "\n", force=True,
                      what="stress-test result")
    return d


def _rows(result: StressResult, cls: str) -> list[PoRRow]:
    return [r for r in result.rows if r.cls == cls]


def class_summary(result: StressResult, cls: str) -> dict[str, Any]:
    """Per class: valid-PoR rate, distances, MI flips, the canary test on theta'."""
    rows = _rows(result, cls)
    targets = sum(r.targets for r in rows)
    ps = [r.canary_log10_p for r in rows if r.canary_log10_p is not None]
    return {
        "pors": len(rows),
        "targets": targets,
        "valid_por_targets": sum(r.targets for r in rows if r.valid),
        "valid_por_rate": sum(r.targets for r in rows if r.valid) / targets if targets else None,
        "median_forged_steps": median(r.forged_steps for r in rows),
        "median_max_error_over_tolerance": median(r.max_error_over_tolerance for r in rows),
        "median_distance": median(r.distance for r in rows),
        "median_relative_distance": median(r.relative_distance for r in rows),
        "median_kong_d_theta": median(r.kong_d_theta for r in rows),
        "median_distance_over_honest_rerun": median(r.distance for r in rows)
        / result.honest_rerun_distance if result.honest_rerun_distance else None,
        "median_gradient_gap": median(r.median_gradient_gap for r in rows),
        "diff_rate": sum(r.diff_flips for r in rows) / targets if targets else None,
        "common_rate": _rate(rows, "common"),
        "validation_rate": _rate(rows, "validation"),
        "canary_log10_p_on_forged": ps,
    }


def _rate(rows: list[PoRRow], what: str) -> float | None:
    n = sum(getattr(r, f"{what}_n") for r in rows)
    return sum(getattr(r, f"{what}_flips") for r in rows) / n if n else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def markdown_table(summary: dict[str, dict[str, Any]]) -> str:
    """One row per class (the `summary` of `stress_to_dict`), in the paper's terms."""
    lines = [
        "| class | targets | valid PoR at the calibrated tolerance | max error / tolerance "
        "(median) | gradient gap ‖g(B')−g(B)‖/‖g(B)‖ (median) | ‖θ−θ'‖ (median; % of ‖θ‖; "
        "× honest rerun) | Kong d_θ | Diff | Common | Validation | canary test on θ' (log10 p) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for cls, s in summary.items():
        ps = ", ".join(f"{p:.1f}" for p in s["canary_log10_p_on_forged"]) or "—"
        rerun = s.get("median_distance_over_honest_rerun")
        lines.append(
            f"| {cls} | {s['targets']} | {s['valid_por_targets']}/{s['targets']} "
            f"({_pct(s['valid_por_rate'])}) | {s['median_max_error_over_tolerance']:.3g} | "
            f"{s['median_gradient_gap']:.2f} | {s['median_distance']:.3g} "
            f"({100 * s['median_relative_distance']:.2g}%; {rerun or float('nan'):.3g}×) | "
            f"{s['median_kong_d_theta']:.2g} | {_pct(s['diff_rate'])} | {_pct(s['common_rate'])} "
            f"| {_pct(s['validation_rate'])} | {ps} |"
        )
    return "\n".join(lines)


LABELS = {"natural": "natural MI members", "canary": "single canaries",
          "all-canaries": "the whole canary set"}


def summary_line(stress: dict[str, Any], where: Path | str) -> str:
    """The line a canary report carries (from `stress_to_dict`'s output): it links the stress
    test and claims nothing more."""
    parts = []
    for cls, s in stress["summary"].items():
        part = f"{LABELS.get(cls, cls)}: {s['valid_por_targets']}/{s['targets']} valid PoRs"
        if s["canary_log10_p_on_forged"]:
            part += f", canary test on θ' log10 p ≥ {min(s['canary_log10_p_on_forged']):.1f}"
        parts.append(part)
    return (
        f"repudiation stress test: {'; '.join(parts)} (tolerance {stress['tolerance']:.2g}, "
        f"calibrated on honest replays; canary test on θ log10 p = "
        f"{stress['theta_canary_log10_p']:.1f}); details: {where}. This does not change the "
        "test above: its p-value is a bound whatever the stress test finds."
    )


def stress_note(path: str | Path) -> str:
    """`summary_line` of a stress-test result file (for a canary report that links one)."""
    from harness.registry import TaskError

    try:
        stress = json.loads(Path(path).read_text("utf-8"))
        return summary_line(stress, path)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise TaskError(f"{path}: not a repudiation stress-test result ({e})") from e
