"""`tdp audit`: run one task against one model and write a proof report."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import parse_options, user_errors


@click.command("audit")
@click.option("--model", required=True, help="Model spec, e.g. hf:path/or/id@rev,dtype=bfloat16.")
@click.option("--reference", help="Reference model spec (enables the ref_ratio score).")
@click.option("--canaries", "canary_file", type=click.Path(path_type=Path), required=True)
@click.option("--task", default=None, help="Task name (default: the task in the canary file's plan).")
@click.option("--option", "options", multiple=True, help="Task option key=value (repeatable).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--no-progress", is_flag=True)
@user_errors
def audit_cmd(model, reference, canary_file, task, options, out, no_progress) -> None:
    """Audit MODEL against a committed canary set; writes report.{json,html,md} to OUT."""
    from harness.audit import audit_from_paths, make_report
    from harness.report import write_report
    from harness.report.wording import p_label, verdict

    result = audit_from_paths(
        model, canary_file, task, reference, parse_options(options), progress=not no_progress
    )
    write_report(make_report(f"tdp audit: {model}", [result]), out)
    click.echo(f"{result.primary.result.name} on {result.primary.score}: {p_label(result.primary.result)}")
    click.echo(verdict(result))
    click.echo(f"report: {out / 'report.html'}")


def register(group: click.Group) -> None:
    group.add_command(audit_cmd)
