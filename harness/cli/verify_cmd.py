"""`tdp verify`: recompute a report's statistics, seed and counterfactuals; exit 1 on mismatch."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import user_errors


@click.command("verify")
@click.argument("report", type=click.Path(path_type=Path))
@click.option(
    "--canaries",
    "canary_file",
    type=click.Path(path_type=Path),
    multiple=True,
    help="A committed canary file (repeatable: each audit is checked against the file with "
    "its commitment; default: the path recorded in the report).",
)
@click.option(
    "--rescore", type=int, default=0, show_default=True, help="Re-score N random items per audit."
)
@click.option(
    "--model", help="Model spec for --rescore (default: the spec recorded in the report)."
)
@click.option(
    "--rescore-seed",
    type=int,
    default=None,
    help="Seed that picks the re-scored items (default: fresh randomness, so whoever wrote the "
    "report cannot know which items will be checked; give one only to reproduce a check).",
)
@click.option(
    "--tolerance",
    type=float,
    default=None,
    help="Absolute score tolerance for --rescore (default 1e-3).",
)
@user_errors
def verify_cmd(report, canary_file, rescore, model, rescore_seed, tolerance) -> None:
    """Check REPORT (report.json or its folder) from its own data; one verdict per check."""
    import secrets

    from harness.results import load_report
    from harness.verify import RESCORE_ATOL, verify_report

    if rescore and rescore_seed is None:
        rescore_seed = secrets.randbits(63)
        click.echo(f"rescore seed: {rescore_seed} (pass --rescore-seed to repeat this check)")

    checks = verify_report(
        load_report(report),
        list(canary_file),
        rescore,
        model,
        rescore_seed,
        RESCORE_ATOL if tolerance is None else tolerance,
    )
    for c in checks:
        click.echo(f"[{c.verdict:>4}] {c.audit} :: {c.name}: {c.detail}")
    failed = [c for c in checks if c.verdict == "FAIL"]
    if failed:
        click.echo(f"VERIFICATION FAILED: {len(failed)} of {len(checks)} checks")
        raise SystemExit(1)
    click.echo(f"verified: {sum(c.verdict == 'ok' for c in checks)} checks ok")


def register(group: click.Group) -> None:
    group.add_command(verify_cmd)
