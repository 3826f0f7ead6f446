"""`tdp calibrate`: empirical rejection rates of the exact tests on null audits."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import user_errors


@click.command("calibrate")
@click.option("--model", help="Model spec (default: a tiny model trained on clean text, cached).")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path.home() / ".cache" / "tdp",
    show_default=True,
)
@click.option(
    "--audits",
    "-n",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Number of null audits.",
)
@click.option(
    "--statistic",
    type=click.Choice(["rank", "rank-sum", "uniform-rank-sum", "rank-first-count", "set-mean"]),
    default="rank-sum",
    show_default=True,
)
@click.option(
    "-k",
    "k",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Canaries (marks) per audit.",
)
@click.option(
    "-m",
    "m",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Counterfactuals per audit (set-mean: out-world users).",
)
@click.option("--score", default="loss", show_default=True)
@click.option("--kind", type=click.Choice(["words", "tokens"]), default="words", show_default=True)
@click.option("--length", "-l", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--tokenizer", help="Tokenizer for kind=tokens (default: the model's).")
@click.option(
    "--alpha",
    "alphas",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    multiple=True,
    help="Levels (repeatable; default 0.001 0.01 0.05 0.1).",
)
@click.option("--seed", default="0", show_default=True, help="Seed label for the pool (recorded).")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results/calibration/latest"),
    show_default=True,
)
@click.option("--no-progress", is_flag=True)
@user_errors
def calibrate_cmd(
    model,
    cache_dir,
    audits,
    statistic,
    k,
    m,
    score,
    kind,
    length,
    tokenizer,
    alphas,
    seed,
    out,
    no_progress,
) -> None:
    """Run many null audits; report rejection rates with Clopper-Pearson intervals and a QQ plot."""
    from canaries.files import check_writable_dir
    from canaries.generators import tokens_spec, words_spec
    from harness.backends import load_backend
    from harness.backends.hub import preflight_model
    from harness.calibrate import (
        CalibrationConfig,
        default_null_model,
        run_calibration,
        table_markdown,
        write_calibration,
    )
    from harness.stats.scores import get_score

    get_score(score)
    check_writable_dir(out)
    check_writable_dir(cache_dir, "cache folder")
    if model:
        preflight_model(model)
    try:
        config = CalibrationConfig(
            audits=audits,
            k=k,
            m=m,
            statistic=statistic,
            score=score,
            seed=seed,
            **({"alphas": tuple(alphas)} if alphas else {}),
        )
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    model = model or default_null_model(cache_dir, progress=not no_progress)
    backend = load_backend(model)
    if kind == "tokens":
        tok = tokenizer or model.split(":", 1)[-1].split("@")[0].split(",")[0]
        spec = tokens_spec(length, tok)
    else:
        spec = words_spec(length)
    result = run_calibration(backend, model, spec, config, progress=not no_progress)
    write_calibration(result, out)
    click.echo(table_markdown(result))
    click.echo(f"calibration report: {out / 'calibration.html'}")
    if not all(r.consistent for r in result.rows):
        click.echo(
            "WARNING: an exact level lies outside its interval (expected about 1% of the time "
            "per row at 99% confidence; repeat with another --seed before concluding anything)"
        )


def register(group: click.Group) -> None:
    group.add_command(calibrate_cmd)
