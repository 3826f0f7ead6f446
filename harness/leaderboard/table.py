"""From cell reports to the leaderboard's numbers: one summary per cell, Holm across the grid,
and the files leaderboard.json (schema-versioned) and leaderboard.csv."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness.leaderboard.config import LeaderboardConfig
from harness.leaderboard.grid import CELLS_DIR, Cell, cell_dir, grid_cells, read_record
from harness.results import Report, load_report

SCHEMA = "tdp-leaderboard"
SCHEMA_VERSION = 1
HOLM_FAMILY = (
    "every cell whose primary p-value is an exact bound (canary tasks); estimates (membership-"
    "inference benchmarks) are not in the family and carry no p-value"
)


@dataclass(frozen=True)
class CellSummary:
    """What the leaderboard shows of one cell, all read from the cell's report."""

    id: str
    model: str
    task: str
    status: str  # done | failed | missing
    report: str = ""  # relative path of report.json
    report_sha256: str = ""
    audit_digest: str = ""
    error: str = ""
    # canary tasks: the primary test
    test: str = ""
    score: str = ""
    kind: str = ""  # bound | estimate
    pvalue: float | None = None
    log10_pvalue: float | None = None
    holm_log10: float | None = None
    # benchmarks: the best model-based score and the strongest blind baseline
    auc: float | None = None
    auc_ci: tuple[float, float] | None = None
    best_score: str = ""
    blind: str = ""
    blind_auc: float | None = None
    blind_ci: tuple[float, float] | None = None
    shifted: bool | None = None

    @property
    def is_bound(self) -> bool:
        return self.status == "done" and self.kind == "bound" and self.log10_pvalue is not None


def summarize_report(cell_id: str, model: str, task: str, report: Report, rel: str,
                     sha: str) -> CellSummary:
    """The numbers of one single-audit cell report."""
    a = report.audits[0]
    base = CellSummary(cell_id, model, task, "done", rel, sha,
                       str(report.extra.get("audit_digest", "")))
    if a.canary_set is None:
        from harness.mi.benchmark import summary_of

        s = summary_of(a)
        v = s.verdict
        best = s.model[v.best_score]
        return replace(base, kind="estimate", test="roc-auc", score=a.primary.score,
                       auc=best.auc, auc_ci=best.ci.get("auc"), best_score=v.best_score,
                       blind=v.best_blind, blind_auc=v.blind_auc, blind_ci=v.blind_ci,
                       shifted=v.shifted)
    r = a.primary.result
    return replace(base, test=r.name, score=a.primary.score, kind=r.kind, pvalue=r.pvalue,
                   log10_pvalue=r.log10_pvalue)


def summarize_cell(out: Path, cell: Cell) -> CellSummary:
    rec = read_record(out, cell.id)
    if rec is None:
        return CellSummary(cell.id, cell.model.name, cell.task.name, "missing")
    if rec.status != "done":
        return CellSummary(cell.id, cell.model.name, cell.task.name, rec.status, error=rec.error)
    rel = f"{CELLS_DIR}/{cell.id}/report.json"
    report = load_report(cell_dir(out, cell.id))
    return summarize_report(cell.id, cell.model.name, cell.task.name, report, rel,
                            rec.report_sha256)


def with_holm(cells: list[CellSummary]) -> list[CellSummary]:
    """Holm step-down over HOLM_FAMILY, in log10 (p-values can be far below the float range)."""
    from harness.stats.ranks import holm_log10

    family = [i for i, c in enumerate(cells) if c.is_bound]
    adjusted = holm_log10([cells[i].log10_pvalue for i in family])  # type: ignore[misc]
    out = list(cells)
    for i, h in zip(family, adjusted, strict=True):
        out[i] = replace(out[i], holm_log10=h)
    return out


def grid_summaries(config: LeaderboardConfig, out: Path) -> list[CellSummary]:
    return with_holm([summarize_cell(out, c) for c in grid_cells(config)])


def _jsonable(x: Any) -> Any:
    """NaN and infinities as strings (leaderboard.json is strict JSON for browsers)."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def cells_digest(cells: list[CellSummary] | list[dict[str, Any]]) -> str:
    """sha256 of the canonical JSON of the cells as leaderboard.json holds them."""
    rows = [asdict(c) if isinstance(c, CellSummary) else c for c in cells]
    blob = json.dumps(_jsonable(rows), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def leaderboard_dict(config: LeaderboardConfig, cells: list[CellSummary],
                     run: dict[str, Any]) -> dict[str, Any]:
    from harness.provenance import now, provenance

    return _jsonable({
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "title": config.title,
        "created": now(),
        "provenance": provenance(),
        "config": {"path": config.path, "sha256": config.sha256, "text": config.text},
        "series": [asdict(s) for s in config.series],
        "models": [asdict(m) for m in config.models],
        "tasks": [{**asdict(t), "models": list(t.models)} for t in config.tasks],
        "holm_family": HOLM_FAMILY,
        "cells": [asdict(c) for c in cells],
        "cells_sha256": cells_digest(cells),
        "run": run,
    })


CSV_FIELDS = ("model", "task", "status", "kind", "test", "score", "pvalue", "log10_pvalue",
              "holm_log10", "auc", "auc_lo", "auc_hi", "best_score", "blind", "blind_auc",
              "blind_lo", "blind_hi", "shifted", "report", "error")


def leaderboard_csv(cells: list[CellSummary]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for c in cells:
        d = {k: v for k, v in asdict(c).items() if k in CSV_FIELDS}
        for key, ci in (("auc", c.auc_ci), ("blind", c.blind_ci)):
            d[f"{key}_lo"], d[f"{key}_hi"] = ci if ci else ("", "")
        w.writerow({k: ("" if v is None else v) for k, v in d.items()})
    return buf.getvalue()


def load_leaderboard(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(folder, leaderboard.json content) of a leaderboard folder or its leaderboard.json."""
    from harness.leaderboard.config import LeaderboardError

    p = Path(path)
    file = p / "leaderboard.json" if p.is_dir() else p
    try:
        d = json.loads(file.read_text("utf-8"))
    except FileNotFoundError:
        raise LeaderboardError(f"{file}: no leaderboard here") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise LeaderboardError(f"{file}: not a leaderboard ({e})") from None
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise LeaderboardError(f"{file}: not a tdp leaderboard (schema {SCHEMA!r} missing)")
    if d.get("schema_version") != SCHEMA_VERSION:
        raise LeaderboardError(f"{file}: leaderboard schema_version {d.get('schema_version')!r} "
                               f"unsupported (this harness reads {SCHEMA_VERSION})")
    return file.parent, d
