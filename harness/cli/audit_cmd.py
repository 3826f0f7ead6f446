"""`tdp audit`: run one task against one model and write a proof report."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import parse_options, user_errors


@click.command("audit")
@click.option("--model", required=True, help="Model spec, e.g. hf:path/or/id@rev,dtype=bfloat16.")
@click.option("--reference", help="Reference model spec (enables the ref_ratio score).")
@click.option(
    "--canaries",
    "canary_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The committed canary set (not for tasks on labelled data, e.g. mi-benchmark).",
)
@click.option(
    "--task", default=None, help="Task name (default: the task in the canary file's plan)."
)
@click.option("--option", "options", multiple=True, help="Task option key=value (repeatable).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--force", is_flag=True, help="Replace a report already in OUT.")
@click.option("--no-progress", is_flag=True)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Score cache directory (default: $TDP_CACHE_DIR, else $XDG_CACHE_HOME/tdp, "
    "else ~/.cache/tdp).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the score cache.")
@click.option(
    "--cache-chunk",
    type=click.IntRange(min=1),
    default=None,
    help="Texts scored per chunk; each finished chunk is stored at once (default 4096).",
)
@click.option(
    "--ray-workers",
    type=click.IntRange(min=0),
    default=0,
    help="Score chunks across N Ray actors, each loading the model (needs tdp-harness[ray]).",
)
@click.option(
    "--ray-address", default=None, help="Ray cluster to join (default: start a local one)."
)
@user_errors
def audit_cmd(
    model,
    reference,
    canary_file,
    task,
    options,
    out,
    force,
    no_progress,
    cache_dir,
    no_cache,
    cache_chunk,
    ray_workers,
    ray_address,
) -> None:
    """Audit MODEL against a committed canary set; writes report.{json,html,md} to OUT."""
    from canaries.files import check_writable_dir
    from harness.audit import audit_from_paths, make_report
    from harness.backends.hub import preflight_model
    from harness.cache import DEFAULT_CHUNK_TEXTS, ScoreCache, default_cache_dir
    from harness.report import check_report_dir, write_report
    from harness.report.wording import p_label, verdict

    if no_cache and cache_dir is not None:
        raise click.UsageError("--no-cache and --cache-dir contradict each other")
    if ray_address and not ray_workers:
        raise click.UsageError("--ray-address needs --ray-workers N")
    task_options = parse_options(options)
    # everything that can fail cheaply fails before a model is loaded or a text is scored
    check_report_dir(out, force)
    cache = None
    if not no_cache:
        cache = ScoreCache(cache_dir or default_cache_dir(), cache_chunk or DEFAULT_CHUNK_TEXTS)
        check_writable_dir(cache.root, "score cache folder")
    for spec in (model, reference):
        if spec is not None:
            preflight_model(spec)
    result = audit_from_paths(
        model,
        canary_file,
        task,
        reference,
        task_options,
        progress=not no_progress,
        cache=cache,
        ray_workers=ray_workers,
        ray_address=ray_address,
    )
    write_report(make_report(f"tdp audit: {model}", [result]), out, force)
    if result.canary_set is None:  # a benchmark: estimates and the blind-baseline verdict
        from harness.mi.benchmark import summary_of

        s = summary_of(result)
        click.echo(f"best model-based AUC {s.verdict.best_auc:.3f} ({s.verdict.best_score}); "
                   "estimates, not bounds")
        click.echo(s.verdict.sentence())
        click.echo(f"report: {out / 'report.html'}")
        return
    primary = result.primary
    click.echo(f"{primary.result.name} on {primary.score}: {p_label(primary.result)}")
    click.echo(verdict(result))
    click.echo(f"report: {out / 'report.html'}")


def register(group: click.Group) -> None:
    group.add_command(audit_cmd)
