"""`tdp demo`: the embedded end-to-end run on a tiny model trained here."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("results/demo"), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the demo's canaries and training.")
def demo_cmd(out: Path, seed: int) -> None:
    """Build a corpus, plant canaries, train target and reference, audit, write a report."""
    from dataclasses import replace

    from harness.demo import DemoConfig, run_demo

    cfg = DemoConfig(seed=seed)
    run_demo(out, replace(cfg, train=replace(cfg.train, seed=seed)))


def register(group: click.Group) -> None:
    group.add_command(demo_cmd)
