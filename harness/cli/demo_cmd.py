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
@click.option(
    "--evidence",
    is_flag=True,
    help="Then verify the report and pack OUT/evidence/demo.tdp.zip (signed, with a PDF), "
    "and verify the bundle.",
)
@user_errors
def demo_cmd(out: Path, seed: int, evidence: bool) -> None:
    """Build a corpus, plant canaries, train target and reference, audit, write a report."""
    from dataclasses import replace

    from canaries.files import check_writable_dir
    from harness.demo import DemoConfig, run_demo

    check_writable_dir(out)  # before minutes of training, not after

    cfg = DemoConfig(seed=seed)
    run_demo(out, replace(cfg, train=replace(cfg.train, seed=seed)))
    if evidence:
        _evidence(out, seed)


def _evidence(out: Path, seed: int) -> None:
    """`tdp verify`, `tdp evidence pack` and `tdp evidence verify` on the demo's run, each as
    its own command in the chain of custody (the demo's own record is closed first)."""
    from harness.cli.evidence_cmd import pack_cmd
    from harness.cli.evidence_cmd import verify_cmd as evidence_verify_cmd
    from harness.cli.verify_cmd import verify_cmd
    from harness.demo import demo_signing_key
    from harness.evidence.custody_hook import finish_current

    finish_current()
    ctx = click.get_current_context()
    work, folder = out / "work", out / "evidence"
    canaries = (work / "canaries.json", work / "never-planted-canaries.json")
    click.echo("[tdp demo] tdp verify (re-scoring with the models)")
    ctx.invoke(verify_cmd, report=out, canary_files=canaries)
    key, fingerprint = demo_signing_key(work, seed)
    click.echo("[tdp demo] tdp evidence pack")
    ctx.invoke(pack_cmd, run_dirs=(out,), out=folder / "demo.tdp.zip", key=key,
               canary_files=canaries, reveal_secret=True, pdf_out=folder / "report.pdf",
               local_tsa=work / "local-tsa", author="tdp demo (local test key)", force=True)
    click.echo("[tdp demo] tdp evidence verify")
    ctx.invoke(evidence_verify_cmd, bundle=folder / "demo.tdp.zip", signers=(fingerprint,),
               models=(f"hf:{work / 'target'}", f"hf:{work / 'reference'}"),
               out=folder / "verify.txt")


def register(group: click.Group) -> None:
    group.add_command(demo_cmd)
