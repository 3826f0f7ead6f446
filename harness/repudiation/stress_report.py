"""The stress test's result as JSON, as a Markdown table, and as the one line a report carries."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from statistics import median
from typing import Any

from canaries.files import atomic_write_text
from harness.repudiation.stress import StressResult

CLASSES = ("natural", "canary", "all-canaries")
#: tolerance multiples at which the valid-PoR rate is also reported (how far from passing)
LOOSER = (1, 10, 100, 1000, 10000)


def stress_to_dict(result: StressResult) -> dict[str, Any]:
    """The result as JSON-ready data, with a per-class `summary` computed from the rows."""
    d = asdict(result)
    d["rows"] = []
    for row in result.rows:
        r = asdict(row)
        r["canary_test"] = row.canary_test.to_dict() if row.canary_test else None
        r["canary_log10_p"] = row.canary_log10_p
        d["rows"].append(r)
    return summarize(d)


def summarize(stress: dict[str, Any]) -> dict[str, Any]:
    """`stress` with its per-class summary (re)computed from its stored rows."""
    classes = [c for c in CLASSES if any(r["cls"] == c for r in stress["rows"])]
    return {**stress, "summary": {c: class_summary(stress, c) for c in classes}}


def write_stress_result(result: StressResult, path: Path) -> dict[str, Any]:
    """Write the result as JSON; returns what was written."""
    d = stress_to_dict(result)
    atomic_write_text(path, json.dumps(d, indent=1, default=float) + "\n", force=True,
                      what="stress-test result")
    return d


def class_summary(stress: dict[str, Any], cls: str) -> dict[str, Any]:
    """Per class: valid-PoR rates, distances, MI flips, the canary test on theta'."""
    rows = [r for r in stress["rows"] if r["cls"] == cls]
    targets = sum(r["targets"] for r in rows)

    def share(pred: Any) -> float | None:
        return sum(r["targets"] for r in rows if pred(r)) / targets if targets else None

    def med(key: str) -> float:
        return median(r[key] for r in rows)

    rerun = stress["honest_rerun_distance"]
    return {
        "pors": len(rows),
        "targets": targets,
        "valid_por_targets": sum(r["targets"] for r in rows if r["valid"]),
        "valid_por_rate": share(lambda r: r["valid"]),
        "valid_por_rate_if_tolerance_times": {
            str(m): share(lambda r, m=m: _passes(r, m)) for m in LOOSER
        },
        "mi_equivalent_rate": 1 - sum(r["diff_flips"] for r in rows) / targets,
        "median_forged_steps": med("forged_steps"),
        "median_max_error_over_tolerance": med("max_error_over_tolerance"),
        "median_distance": med("distance"),
        "median_relative_distance": med("relative_distance"),
        "median_kong_d_theta": med("kong_d_theta"),
        "median_distance_over_honest_rerun": med("distance") / rerun if rerun else None,
        "median_gradient_gap": med("median_gradient_gap"),
        "diff_rate": sum(r["diff_flips"] for r in rows) / targets,
        "common_rate": _rate(rows, "common"),
        "called_rate": _rate(rows, "called"),
        "validation_rate": _rate(rows, "validation"),
        "canary_log10_p_on_forged": [
            r["canary_log10_p"] for r in rows if r["canary_log10_p"] is not None
        ],
    }


def _passes(row: dict[str, Any], looser: float) -> bool:
    """Would the forged log verify with the tolerance `looser` times larger?"""
    return row["integrity_problems"] == 0 and row["max_error_over_tolerance"] <= looser


def _rate(rows: list[dict[str, Any]], what: str) -> float | None:
    n = sum(r[f"{what}_n"] for r in rows)
    return sum(r[f"{what}_flips"] for r in rows) / n if n else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def markdown_table(summary: dict[str, dict[str, Any]]) -> str:
    """Two tables, one row per class: can the forged logs pass verification, and what did
    the forgery do to the model and to the evidence (Kong et al.'s metrics)."""
    looser = [m for m in LOOSER if m > 1]
    verify = [
        "| class | targets | re-batched steps (median) | gradient gap ‖g(B')−g(B)‖/‖g(B)‖ "
        "(median) | max error / tolerance (median) | valid PoR at the calibrated tolerance | "
        + " | ".join(f"valid if ×{m:g}" for m in looser) + " |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(looser),
    ]
    effect = [
        "| class | ‖θ−θ'‖ (median) | % of ‖θ‖ | × honest rerun | Kong d_θ | MI-equivalent "
        "(no Diff flip) | Diff | Common | called members, not targets | Validation | canary "
        "test on θ' (log10 p) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for cls, s in summary.items():
        rates = s["valid_por_rate_if_tolerance_times"]
        verify.append(
            f"| {cls} | {s['targets']} | {s['median_forged_steps']:g} | "
            f"{s['median_gradient_gap']:.2f} | {s['median_max_error_over_tolerance']:.3g} | "
            f"{s['valid_por_targets']}/{s['targets']} ({_pct(s['valid_por_rate'])}) | "
            + " | ".join(_pct(rates[str(m)]) for m in looser) + " |"
        )
        ps = ", ".join(f"{p:.1f}" for p in s["canary_log10_p_on_forged"]) or "—"
        rerun = s["median_distance_over_honest_rerun"]
        effect.append(
            f"| {cls} | {s['median_distance']:.3g} | {100 * s['median_relative_distance']:.2g}% "
            f"| {rerun if rerun is not None else float('nan'):.3g} | "
            f"{s['median_kong_d_theta']:.2g} | {_pct(s['mi_equivalent_rate'])} | "
            f"{_pct(s['diff_rate'])} | {_pct(s['common_rate'])} | {_pct(s['called_rate'])} | "
            f"{_pct(s['validation_rate'])} | {ps} |"
        )
    return "\n".join(verify) + "\n\n" + "\n".join(effect)


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
