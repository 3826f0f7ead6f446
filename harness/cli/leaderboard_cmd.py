"""`tdp leaderboard`: build controlled models, run a grid of models x tasks, write the page."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import user_errors


def _workers(workers: int | None, threads: int | None = None):  # noqa: ANN202
    from dataclasses import replace

    from harness.leaderboard.workers import plan_workers

    plan = plan_workers(workers)
    return replace(plan, threads=threads) if threads else plan


THREADS_HELP = ("torch threads per worker (default: the CPU cores split between workers; on a "
                "busy machine 1 is often much faster for small models)")


@click.group("leaderboard")
def leaderboard_group() -> None:
    """Audit a family of models with several tasks; one page to read (index.html)."""


@leaderboard_group.command("build")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Train this many models at once (default: one per GPU, else 1).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@click.option("--no-progress", is_flag=True)
@user_errors
def build_cmd(config: Path, workers: int | None, threads: int | None, no_progress: bool) -> None:
    """Train the models, canary sets and splits of CONFIG's [build] table (kept when built)."""
    from harness.leaderboard.build import ControlledBuild, build_models
    from harness.leaderboard.config import LeaderboardError, load_config

    cfg = load_config(config)
    if cfg.build is None:
        raise LeaderboardError(f"{config}: no [build] table (nothing to build)")
    b = ControlledBuild.from_table(cfg.build)
    trained = build_models(b, _workers(workers, threads), not no_progress)
    click.echo(f"built in {b.out}: trained {len(trained)} model(s) now"
               + (f" ({', '.join(sorted(trained))})" if trained else " (all were up to date)"))


@leaderboard_group.command("run")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Leaderboard folder (e.g. results/leaderboard/NAME); a rerun resumes it.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes, one model each at a time (default: one per GPU, else 1).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@click.option("--ray", "use_ray", is_flag=True, help="Run one Ray task per model instead.")
@click.option("--ray-address", default=None, help="Ray cluster to join (with --ray).")
@click.option("--redo", is_flag=True, help="Run every cell again, even finished ones.")
@click.option("--no-build", is_flag=True, help="Do not build CONFIG's [build] models first.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Score cache shared by every cell (default: as `tdp audit`).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the score cache.")
@click.option("--no-progress", is_flag=True)
@user_errors
def run_cmd(config: Path, out: Path, workers: int | None, threads: int | None, use_ray: bool,
            ray_address: str | None, redo: bool, no_build: bool, cache_dir: Path | None,
            no_cache: bool, no_progress: bool) -> None:
    """Run every cell of CONFIG (models x tasks) into OUT; finished cells are kept."""
    from canaries.files import check_writable_dir
    from harness.cache import DEFAULT_CHUNK_TEXTS, default_cache_dir
    from harness.leaderboard.build import ControlledBuild, build_models
    from harness.leaderboard.config import load_config
    from harness.leaderboard.runner import build_entries, check_out_dir, run_leaderboard

    if no_cache and cache_dir is not None:
        raise click.UsageError("--no-cache and --cache-dir contradict each other")
    if ray_address and not use_ray:
        raise click.UsageError("--ray-address needs --ray")
    if use_ray and workers:
        raise click.UsageError("--workers and --ray contradict each other (Ray places the tasks)")
    cfg = load_config(config)
    check_out_dir(out, build_entries(cfg, out))
    cache = None if no_cache else str(cache_dir or default_cache_dir())
    if cache is not None:
        check_writable_dir(Path(cache), "score cache folder")
    plan = _workers(workers, threads)
    if cfg.build is not None and not no_build:
        b = ControlledBuild.from_table(cfg.build)
        trained = build_models(b, plan, not no_progress)
        click.echo(f"build: {len(trained)} model(s) trained now in {b.out}")
    run, cells = run_leaderboard(cfg, out, plan, cache, DEFAULT_CHUNK_TEXTS, not no_progress,
                                 redo, ray_address, use_ray)
    click.echo(f"{run.cells} cells: {run.reused} kept from an earlier run, {len(run.records)} run "
               f"now ({run.workers}) in {run.seconds:.0f} s")
    for c in cells:
        if c.status == "done" and c.kind == "bound":
            from harness.leaderboard.page import fmt_log10_p

            click.echo(f"  {c.id}: p ≤ {fmt_log10_p(c.log10_pvalue)} (bound), Holm p ≤ "
                       f"{fmt_log10_p(c.holm_log10)}")
        elif c.status == "done" and c.auc is not None:
            click.echo(f"  {c.id}: AUC {c.auc:.3f} ({c.best_score}, estimate); blind "
                       f"{c.blind_auc:.3f}{' SHIFTED' if c.shifted else ''}")
        else:
            click.echo(f"  {c.id}: {c.status} {c.error}")
    click.echo(f"page: {out / 'index.html'}")
    if run.failed:
        raise click.ClickException(f"{len(run.failed)} cell(s) failed: {', '.join(run.failed)} "
                                   "(see their log.txt; a rerun retries them)")


def register(group: click.Group) -> None:
    group.add_command(leaderboard_group)
