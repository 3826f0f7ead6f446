"""The grid: one cell per (model, task); what makes a cell finished, so a rerun redoes nothing
that finished; where each cell's report lives."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from harness.leaderboard.config import LeaderboardConfig, ModelEntry, TaskEntry

CELLS_DIR = "cells"
CELL_RECORD = "cell.json"
Status = Literal["done", "failed"]


@dataclass(frozen=True)
class Cell:
    model: ModelEntry
    task: TaskEntry
    options: dict[str, Any]
    canary_path: str | None

    @property
    def id(self) -> str:
        return f"{self.model.name}__{self.task.name}"


@dataclass(frozen=True)
class CellRecord:
    """Written after a cell's report (or its failure); its key says what the cell was."""

    id: str
    key: str
    status: Status
    report_sha256: str = ""
    seconds: float = 0.0
    error: str = ""


def grid_cells(config: LeaderboardConfig) -> list[Cell]:
    """Every cell in row-major order (models, then tasks), skipping tasks limited to others."""
    out = []
    for m in config.models:
        for t in config.tasks:
            if t.models and m.name not in t.models:
                continue
            path = config.canaries[t.canaries] if t.canaries is not None else None
            out.append(Cell(m, t, config.task_options(t), path))
    return out


def _file_sha256(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None  # a missing file fails when the cell runs, with its own message


def _folder_state(spec: str | None) -> list[Any] | None:
    """(name, size, mtime) of the files of a local model folder: a rebuilt model is a new key
    without hashing gigabytes on every resume (hub ids are pinned by their revision)."""
    if spec is None:
        return None
    from harness.backends import BACKENDS
    from harness.backends.spec import ModelSpecError, parse_model_spec

    try:
        folder = Path(parse_model_spec(spec, tuple(BACKENDS)).model).expanduser()
    except ModelSpecError:
        return None
    if not folder.is_dir():
        return None
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns]
            for p in sorted(folder.iterdir()) if p.is_file()]


def cell_key(cell: Cell) -> str:
    """sha256 of what determines a cell's result: model and reference specs and the state of
    their local folders, task, options, and the bytes of the canary file and of every option
    naming a file (data sets)."""
    from harness.stats.scores import SCORE_DEFINITIONS

    files = {v: _file_sha256(v) for v in cell.options.values()
             if isinstance(v, str) and Path(v).is_file()}
    blob = json.dumps(
        {"model": cell.model.spec, "reference": cell.model.reference, "task": cell.task.task,
         "options": cell.options, "canaries": _file_sha256(cell.canary_path), "files": files,
         "model_files": _folder_state(cell.model.spec),
         "reference_files": _folder_state(cell.model.reference),
         "score_definitions": SCORE_DEFINITIONS},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cell_dir(out: Path, cell_id: str) -> Path:
    return out / CELLS_DIR / cell_id


def read_record(out: Path, cell_id: str) -> CellRecord | None:
    try:
        d = json.loads((cell_dir(out, cell_id) / CELL_RECORD).read_text("utf-8"))
        return CellRecord(**d)
    except (OSError, ValueError, TypeError):
        return None


def report_sha256(out: Path, cell_id: str) -> str | None:
    try:
        return hashlib.sha256((cell_dir(out, cell_id) / "report.json").read_bytes()).hexdigest()
    except OSError:
        return None


def is_finished(out: Path, cell: Cell) -> bool:
    """Done, with this key, and its report is the one recorded (not edited or half-written)."""
    rec = read_record(out, cell.id)
    return (rec is not None and rec.status == "done" and rec.key == cell_key(cell)
            and rec.report_sha256 == report_sha256(out, cell.id))


def write_record(out: Path, rec: CellRecord) -> None:
    from canaries.files import atomic_write_text

    text = json.dumps(asdict(rec), indent=1) + "\n"
    atomic_write_text(cell_dir(out, rec.id) / CELL_RECORD, text, 0o644, True, "cell record")
