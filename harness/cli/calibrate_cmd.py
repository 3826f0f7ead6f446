"""`tdp calibrate`: many null audits on a model that never saw the canaries; rejection rates."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import user_errors


@click.command("calibrate")
@click.option("--model", help="Model spec (default: a tiny model trained once into the cache).")
@click.option("--audits", type=int, default=1000, show_default=True)
@click.option("--k", "k", type=int, default=4, show_default=True, help="Canaries per audit.")
@click.option(
    "--m", "m", type=int, default=20, show_default=True, help="Counterfactuals per audit."
)
@click.option("--length", type=int, default=10, show_default=True, help="Words per canary.")
@click.option("--score", default="loss", show_default=True)
@click.option("--seed", help="Hex pool seed (default: fresh randomness, recorded).")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results/calibrate"),
    show_default=True,
)
@user_errors
def calibrate_cmd(model, audits, k, m, length, score, seed, out) -> None:
    """Run null audits and write calibration.{json,md} and qq.png to OUT."""
    from harness.backends import load_backend
    from harness.calibrate import CalibrationConfig, markdown_table, run_calibration
    from harness.tiny import tiny_model

    if audits < 1 or k < 1 or m < 1:
        raise click.BadParameter("audits, k and m must be >= 1")
    if m % k:
        raise click.BadParameter(f"--m {m} must be a multiple of --k {k}")
    spec = model or f"hf:{tiny_model(progress=True)}"
    cfg = CalibrationConfig(audits=audits, k=k, m=m, length=length, score=score)
    res = run_calibration(load_backend(spec), spec, cfg, out, bytes.fromhex(seed) if seed else None)
    click.echo(markdown_table(res["rows"]))
    click.echo(f"report: {out / 'calibration.md'}")


def register(group: click.Group) -> None:
    group.add_command(calibrate_cmd)
