"""`tdp simulate`: power curves from controlled injection experiments (resumable)."""

from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path

import click

from harness.cli.errors import user_errors


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a comma-separated list of integers", param_hint=option
        ) from None
    if any(v < 1 for v in values):
        raise click.BadParameter(f"{text!r}: every value must be >= 1", param_hint=option)
    return values


@click.command("simulate")
@click.option(
    "--preset",
    type=click.Choice(["tiny", "demo"]),
    default="tiny",
    show_default=True,
    help="tiny: 40 kB corpus, 1-layer model; demo: the sizes of `tdp demo` (K=32, L=10, M=500).",
)
@click.option("--repeats", "-r", help="Repetitions r, comma-separated (e.g. 1,2,4,8,16).")
@click.option("--lengths", "-l", help="Canary lengths, comma-separated.")
@click.option("--kinds", help="Canary kinds, comma-separated: words,tokens.")
@click.option("--canaries", "-k", help="Canaries per set K, comma-separated.")
@click.option(
    "--groups", "-g", type=click.IntRange(min=1), help="Planted canary sets (users) per cell."
)
@click.option(
    "--counterfactuals", "-m", type=click.IntRange(min=1), help="M for the rank-sum test."
)
@click.option(
    "--users",
    type=click.IntRange(min=1),
    help="Out-world users N for the set-mean test and FPR@100%TPR.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Level for detection rates.",
)
@click.option("--seed", help="Seed label (recorded).")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results/power/latest"),
    show_default=True,
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".tdp-cache/simulate"),
    show_default=True,
    help="Where trained models go (not part of the results).",
)
@click.option("--progress/--no-progress", default=False)
@user_errors
def simulate_cmd(
    preset,
    repeats,
    lengths,
    kinds,
    canaries,
    groups,
    counterfactuals,
    users,
    alpha,
    seed,
    out,
    work_dir,
    progress,
) -> None:
    """Train one tiny model per cell with planted canaries; write power curves and a table to OUT.

    Finished cells (OUT/cells/*.json) are loaded, not retrained: rerun the same command to resume.
    """
    from canaries.files import check_writable_dir
    from harness.simulate import (
        DEMO_PRESET,
        SimulateConfig,
        Simulation,
        table_markdown,
        write_summary,
    )

    config = DEMO_PRESET if preset == "demo" else SimulateConfig()
    overrides = {
        "repeats": _ints(repeats, "--repeats") if repeats else None,
        "lengths": _ints(lengths, "--lengths") if lengths else None,
        "kinds": tuple(kinds.split(",")) if kinds else None,
        "canaries": _ints(canaries, "--canaries") if canaries else None,
        "groups": groups,
        "counterfactuals": counterfactuals,
        "out_world_users": users,
        "alpha": alpha,
        "seed": seed,
    }
    check_writable_dir(out)
    check_writable_dir(work_dir, "work folder")
    try:
        config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
        sim = Simulation(config, out, work_dir, progress)
        results = sim.run(log=click.echo)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    command = "tdp " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    write_summary(results, config, out, command)
    click.echo(table_markdown(results, config))
    click.echo(f"power curves: {out / 'power.png'}; table: {out / 'table.md'}")


def register(group: click.Group) -> None:
    group.add_command(simulate_cmd)
