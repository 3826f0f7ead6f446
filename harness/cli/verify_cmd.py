"""`tdp verify`: every claim of a report recomputed, the protocol chain checked, the model
re-scored; one verdict per check, exit 1 on any failure."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import user_errors


@click.command("verify")
@click.argument("report", type=click.Path(path_type=Path))
@click.option(
    "--canaries",
    "canary_files",
    type=click.Path(path_type=Path, dir_okay=False),
    multiple=True,
    help="The committed canary file (FILE.secret beside it is the revealed seed). Repeatable: "
    "each audit is checked against the file with its commitment; without it, the path recorded "
    "in the report is used and the check says so.",
)
@click.option(
    "--commitment",
    "commitments",
    multiple=True,
    help="A commitment the owner published (64 hex digits, repeatable): the claim must be on it.",
)
@click.option(
    "--rescore",
    "sample",
    type=click.IntRange(min=0),
    default=None,
    help="Counterfactuals re-scored at random per audit, besides every canary (default 100).",
)
@click.option(
    "--no-rescore", is_flag=True, help="Do not load the model: scores stay unchecked (said so)."
)
@click.option("--model", help="Model spec for re-scoring (default: the spec in the report).")
@click.option("--reference", help="Reference model spec for re-scoring (default: the report's).")
@click.option(
    "--rescore-seed",
    type=int,
    default=None,
    help="Seed that picks the re-scored counterfactuals (default: fresh randomness, so whoever "
    "wrote the report cannot know which will be checked; give one only to repeat a check).",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=None,
    help="Absolute score tolerance for re-scoring (default 1e-3).",
)
@user_errors
def verify_cmd(
    report, canary_files, commitments, sample, no_rescore, model, reference, rescore_seed, tolerance
) -> None:
    """Check REPORT (report.json or its folder, or a leaderboard folder: every cell) from its
    data, canary files and model."""
    import secrets

    from harness.results import load_report
    from harness.verify import VerifyOptions, verify_report
    from harness.verify.rescore import DEFAULT_COUNTERFACTUAL_SAMPLE, RESCORE_ATOL, RescorePlan

    for c in commitments:
        if len(c) != 64 or any(ch not in "0123456789abcdefABCDEF" for ch in c):
            raise click.BadParameter(f"{c!r} is not 64 hex digits", param_hint="--commitment")
    if no_rescore and (sample is not None or model or reference or rescore_seed is not None):
        raise click.UsageError("--no-rescore contradicts --rescore/--model/--reference/--rescore-seed")
    if not no_rescore and rescore_seed is None:
        rescore_seed = secrets.randbits(63)
        click.echo(f"rescore seed: {rescore_seed} (pass --rescore-seed to repeat this check)")
    plan = RescorePlan(
        counterfactuals=DEFAULT_COUNTERFACTUAL_SAMPLE if sample is None else sample,
        seed=rescore_seed or 0,
        atol=RESCORE_ATOL if tolerance is None else tolerance,
        model=model,
        reference=reference,
    )
    options = VerifyOptions(tuple(canary_files), tuple(commitments), not no_rescore, plan)
    from harness.leaderboard.verify import is_leaderboard, verify_leaderboard

    if is_leaderboard(report):
        checks = verify_leaderboard(report, options)
    else:
        checks = verify_report(load_report(report), options)
    for c in checks:
        click.echo(f"[{c.verdict:>4}] {c.audit} :: {c.name}: {c.detail}")
    failed = [c for c in checks if c.verdict == "FAIL"]
    opened = [c for c in checks if c.verdict == "open"]
    if failed:
        click.echo(f"VERIFICATION FAILED: {len(failed)} of {len(checks)} checks")
        raise SystemExit(1)
    ok = sum(c.verdict == "ok" for c in checks)
    if opened:
        click.echo(f"verified: {ok} checks ok; {len(opened)} open (a protocol step missing or not "
                   "checked, named above: the claim is only as strong as what was checked)")
    else:
        click.echo(f"verified: {ok} checks ok")


def register(group: click.Group) -> None:
    group.add_command(verify_cmd)
