"""Run a leaderboard grid: skip finished cells, run the rest one model per worker (the model
loaded once for all its tasks), write each cell's report and record as soon as it is done."""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.leaderboard.config import LeaderboardConfig, ModelEntry
from harness.leaderboard.grid import (
    Cell,
    CellRecord,
    cell_dir,
    cell_key,
    grid_cells,
    is_finished,
    report_sha256,
    write_record,
)
from harness.leaderboard.workers import WorkerPlan, run_jobs, run_jobs_ray

LOG = "log.txt"


@dataclass(frozen=True)
class ModelJob:
    """One worker's share: every unfinished cell of one model."""

    out: str
    model: ModelEntry
    cells: tuple[Cell, ...]
    cache_dir: str | None
    cache_chunk: int


@dataclass(frozen=True)
class GridRun:
    cells: int
    reused: int
    records: tuple[CellRecord, ...]
    seconds: float
    workers: str
    failed: tuple[str, ...] = field(default_factory=tuple)


def _load(spec: str | None) -> Any:
    from harness.backends import load_backend

    return load_backend(spec) if spec else None


def run_cell(cell: Cell, backend: Any, reference: Any, cache: Any) -> Any:
    """One audit of one model by one task; returns its Report (one audit)."""
    from harness.audit import AuditContext, load_task_canaries, make_report, run_audit
    from harness.registry import get_task

    task = get_task(cell.task.task)
    cs = load_task_canaries(cell.canary_path, cell.task.task)
    ctx = AuditContext(
        canary_set=cs,
        canary_path=cell.canary_path or "",
        backend=backend,
        model_spec=cell.model.spec,
        reference=reference,
        reference_spec=cell.model.reference,
        progress=False,
        cache=cache,
    )
    role = "audit" if task.needs_canaries else "benchmark"
    title = f"{cell.task.name}: {cell.model.name}"
    result = run_audit(cell.task.task, ctx, cell.options, title=title, role=role)
    return make_report(f"tdp leaderboard cell {cell.id}", [result])


def run_model_cells(job: ModelJob, emit: Callable[..., None]) -> list[CellRecord]:
    """A worker's job: load the model (and reference) once, run its cells in order."""
    from canaries.files import error_line
    from harness.cache import ScoreCache
    from harness.report import write_report

    out = Path(job.out)
    cache = ScoreCache(job.cache_dir, job.cache_chunk) if job.cache_dir else None
    models: dict[str, Any] = {}
    records = []
    for cell in job.cells:
        emit("start", cell.id, "")
        t0 = time.time()
        folder = cell_dir(out, cell.id)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / LOG, "w", encoding="utf-8") as log, contextlib.redirect_stderr(log):
            try:
                for spec in (cell.model.spec, cell.model.reference):
                    if spec and spec not in models:
                        models[spec] = _load(spec)
                report = run_cell(cell, models[cell.model.spec],
                                  models.get(cell.model.reference or ""), cache)
                write_report(report, folder, force=True)
                rec = CellRecord(cell.id, cell_key(cell), "done",
                                 report_sha256(out, cell.id) or "", time.time() - t0)
            except Exception as e:  # a failed cell is recorded and shown; the grid goes on
                traceback.print_exc(file=log)
                rec = CellRecord(cell.id, cell_key(cell), "failed", seconds=time.time() - t0,
                                 error=error_line(e))
        write_record(out, rec)
        records.append(rec)
        emit(rec.status, cell.id, rec.error)
    return records


class Progress:
    """The one progress display of the whole grid (cells done / all cells)."""

    def __init__(self, total: int, done: int, enabled: bool, desc: str = "leaderboard",
                 unit: str = "cell") -> None:
        self.bar = None
        self.running: list[str] = []
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, unit=unit, file=sys.stderr)

    def __call__(self, event: str, cell_id: str, detail: str = "") -> None:
        if event == "start":
            self.running.append(cell_id)
        else:
            if cell_id in self.running:
                self.running.remove(cell_id)
            if event == "failed":
                msg = f"{cell_id} failed: {detail}"
                if self.bar is not None:
                    self.bar.write(msg, file=sys.stderr)
                else:
                    print(msg, file=sys.stderr)
            if self.bar is not None:
                self.bar.update(1)
        if self.bar is not None:
            self.bar.set_postfix_str(", ".join(self.running)[:60])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_grid(
    config: LeaderboardConfig,
    out: Path,
    plan: WorkerPlan,
    cache_dir: str | None,
    cache_chunk: int,
    progress: bool = True,
    ray_address: str | None = None,
    use_ray: bool = False,
) -> GridRun:
    """Every unfinished cell, grouped by model, spread over the workers."""
    t0 = time.time()
    cells = grid_cells(config)
    todo = [c for c in cells if not is_finished(out, c)]
    jobs = []
    for m in config.models:
        mine = tuple(c for c in todo if c.model.name == m.name)
        if mine:
            jobs.append(ModelJob(str(out), m, mine, cache_dir, cache_chunk))
    bar = Progress(len(cells), len(cells) - len(todo), progress)
    try:
        if use_ray:
            results = run_jobs_ray(run_model_cells, jobs, bar, ray_address)
            how = f"Ray tasks, one model each ({ray_address or 'local instance'})"
        else:
            results = run_jobs(run_model_cells, jobs, plan, bar)
            how = plan.describe()
    finally:
        bar.close()
    records = tuple(r for rs in results for r in rs)
    failed = tuple(r.id for r in records if r.status == "failed")
    return GridRun(len(cells), len(cells) - len(todo), records, time.time() - t0, how, failed)


def check_out_dir(out: Path, also: tuple[str, ...] = ()) -> None:
    """The folder is new, empty, or a leaderboard's (resumed); anything else is refused. `also`
    names entries that may be there besides (the config's own build folder)."""
    from canaries.files import OutputError, check_writable_dir, refuse_link

    refuse_link(out, "leaderboard folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"leaderboard folder {out} is a file, not a folder")
    if out.is_dir():
        names = {p.name for p in out.iterdir()} - set(also)
        if names and not names & {"leaderboard.json", "cells"}:
            raise OutputError(f"{out} is not empty and holds no leaderboard; refusing to write "
                              "into it (give a new folder)")
    check_writable_dir(out, "leaderboard folder")


def run_leaderboard(
    config: LeaderboardConfig,
    out: Path,
    plan: WorkerPlan,
    cache_dir: str | None,
    cache_chunk: int,
    progress: bool = True,
    redo: bool = False,
    ray_address: str | None = None,
    use_ray: bool = False,
) -> tuple[GridRun, list[Any]]:
    """Run (or resume) every cell, then write leaderboard.json, leaderboard.csv, index.html."""
    from harness.leaderboard.grid import CELL_RECORD
    from harness.leaderboard.outputs import write_outputs

    check_out_dir(out, build_entries(config, out))
    out.mkdir(parents=True, exist_ok=True)
    if redo:
        for c in grid_cells(config):
            (cell_dir(out, c.id) / CELL_RECORD).unlink(missing_ok=True)
    run = run_grid(config, out, plan, cache_dir, cache_chunk, progress, ray_address, use_ray)
    info = {"seconds": round(run.seconds, 1), "workers": run.workers, "cells": run.cells,
            "reused": run.reused, "ran": len(run.records), "failed": list(run.failed)}
    return run, write_outputs(config, out, info)


def build_entries(config: LeaderboardConfig, out: Path) -> tuple[str, ...]:
    """The entry of `out` that holds the config's [build] folder, if it is inside `out`."""
    if not config.build or "out" not in config.build:
        return ()
    try:
        rel = Path(str(config.build["out"])).resolve().relative_to(out.resolve())
    except ValueError:
        return ()
    return (rel.parts[0],) if rel.parts else ()
