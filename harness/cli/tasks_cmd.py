"""`tdp tasks`: list installed task plugins."""

from __future__ import annotations

import click


@click.command("tasks")
def tasks_cmd() -> None:
    """List the tasks installed under the `tdp.tasks` entry points."""
    from harness.registry import list_tasks

    for name, desc in list_tasks():
        click.echo(f"{name:20s} {desc}")


def register(group: click.Group) -> None:
    group.add_command(tasks_cmd)
