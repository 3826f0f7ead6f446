"""`tdp demo`: the embedded end-to-end run on a tiny model trained here."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import user_errors


@click.command("demo")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results/demo"),
    show_default=True,
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed for the demo's canaries and training.",
)
@user_errors
def demo_cmd(out: Path, seed: int) -> None:
    """Build a corpus, plant canaries, train target and reference, audit, write a report."""
    from dataclasses import replace

    from canaries.files import check_writable_dir
    from harness.demo import DemoConfig, run_demo

    check_writable_dir(out)  # before minutes of training, not after

    cfg = DemoConfig(seed=seed)
    run_demo(out, replace(cfg, train=replace(cfg.train, seed=seed)))


def register(group: click.Group) -> None:
    group.add_command(demo_cmd)
