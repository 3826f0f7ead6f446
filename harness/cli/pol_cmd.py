"""`tdp pol verify LOG` (replay a proof-of-learning log) and `tdp repudiate` (forge a PoR)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.errors import user_errors


def _threads(log, threads: int | None) -> None:  # noqa: ANN001 - a PoLLog
    """Replay with the thread count the log was made with (CPU sums depend on it)."""
    import torch

    n = threads or int(log.environment.get("threads", 0) or 0)
    if n > 0:
        torch.set_num_threads(n)


@click.group("pol")
def pol_group() -> None:
    """Proof-of-learning logs (written by training with PoL logging on)."""


@pol_group.command("verify")
@click.argument("log_dir", metavar="LOG", type=click.Path(path_type=Path))
@click.option("--tolerance", type=click.FloatRange(min=0), help="Skip calibration; use this.")
@click.option("--calibrate", "calibrate_n", type=click.IntRange(min=1), default=4,
              show_default=True, help="Honest segments replayed to calibrate the tolerance.")
@click.option("--factor", type=click.FloatRange(min=1), default=10.0, show_default=True,
              help="Tolerance = factor x the largest honest-replay disagreement.")
@click.option("--top-q", type=click.IntRange(min=1), help="Check the q largest updates only.")
@click.option("--sample", type=click.IntRange(min=1), help="Check this many random segments.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="Torch threads (default: the log's).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing --json file.")
@user_errors
def verify_cmd(log_dir, tolerance, calibrate_n, factor, top_q, sample, seed, threads, json_out,
               force) -> None:
    """Replay LOG's segments; exit 1 if any fails or the log is inconsistent."""
    from canaries.files import atomic_write_text, check_new_output
    from harness.repudiation.replay import run_from_log
    from harness.repudiation.verify import calibrate, integrity_problems, verify_run
    from harness.train.pol import load_log

    if top_q is not None and sample is not None:
        raise click.UsageError("--top-q and --sample contradict each other")
    if json_out is not None:
        check_new_output(json_out, force, "--json file")
    log = load_log(log_dir)
    _threads(log, threads)
    problems = integrity_problems(log)
    for p in problems:
        click.echo(f"[FAIL] {p}")
    if problems:
        click.echo(f"PoL log INVALID: {len(problems)} integrity problems; nothing replayed")
        raise click.exceptions.Exit(1)
    run = run_from_log(log)
    cal = None
    if tolerance is None:
        cal = calibrate(run, calibrate_n, factor, seed)
        tolerance = cal.tolerance
        click.echo(f"calibration: {len(cal.segments)} segments replayed with the gradient summed "
                   f"in {' and '.join(map(str, cal.variants))} parts; largest disagreement "
                   f"{max(cal.noise):.3g}; tolerance {factor:g} x that = {tolerance:.3g}")
    result = verify_run(run, tolerance, top_q, sample, seed)
    for c in result.checks:
        mark = "  ok" if c.passed else "FAIL"
        click.echo(f"[{mark}] steps {c.start}-{c.end}: error {c.error:.3g} (update {c.update:.3g})")
    if json_out is not None:
        body = {**result.to_dict(), "calibration": cal.to_dict() if cal else None}
        text = json.dumps(body, indent=1) + "\n"
        atomic_write_text(json_out, text, force=force, what="--json file")
    n = len(result.checks)
    if result.valid:
        click.echo(f"PoL log valid: {n}/{n} segments ({result.selection}) reproduce within "
                   f"{tolerance:.3g}")
        return
    bad = ", ".join(f"{c.start}-{c.end}" for c in result.failed)
    click.echo(f"PoL log INVALID: {len(result.failed)} of {n} segments fail (steps {bad})")
    raise click.exceptions.Exit(1)


def _read_targets(paths: tuple[Path, ...]) -> list[str]:
    """Each .txt file is one target; a folder of .txt files or a .jsonl file holds several."""
    from canaries.corpus import CorpusError, read_corpus

    texts: list[str] = []
    for p in paths:
        if p.suffix == ".txt" and p.is_file():
            try:
                texts.append(p.read_text("utf-8"))
            except UnicodeDecodeError:
                raise CorpusError(f"{p}: not UTF-8 text") from None
        elif p.suffix == ".txt" and not p.exists():
            raise FileNotFoundError(2, "No such file or directory", str(p))
        else:
            texts.extend(read_corpus(p).texts)
    return texts


@click.command("repudiate")
@click.option("--log", "log_dir", required=True, type=click.Path(path_type=Path),
              help="The PoL log of the model to repudiate membership in.")
@click.option("--target", "targets", required=True, multiple=True,
              type=click.Path(path_type=Path),
              help="A target document (.txt), a folder of them, or a .jsonl (repeatable).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--kappa", type=click.IntRange(min=2), default=2, show_default=True,
              help="Random splits of the data per step.")
@click.option("--mu", type=click.IntRange(min=1), default=16, show_default=True,
              help="Candidate minibatches per split.")
@click.option("--lambda", "lam", type=click.IntRange(min=1), default=1, show_default=True,
              help="Targets covered by one PoR.")
@click.option("--swap", is_flag=True,
              help="Candidates keep B_t's points outside the split (a stronger forger).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="Torch threads (default: the log's).")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@user_errors
def repudiate_cmd(log_dir, targets, out, kappa, mu, lam, swap, seed, threads, force) -> None:
    """Forge proofs of repudiation (Kong et al., Algorithm 2/3) for the targets in LOG."""
    from canaries.files import check_new_output, check_writable_dir
    from harness.repudiation.forge import ForgeOptions
    from harness.repudiation.por import repudiate
    from harness.train.pol import load_log

    check_new_output(out, force, "repudiation output folder")
    check_writable_dir(out, "repudiation output folder")
    texts = _read_targets(targets)
    log = load_log(log_dir)
    _threads(log, threads)
    result = repudiate(log, texts, ForgeOptions(kappa, mu, lam, seed, swap), out, force)
    for p in result.pors:
        click.echo(
            f"PoR {p.index} ({len(p.targets)} target(s), {p.removed_blocks} blocks left out): "
            f"{len(p.forged_steps)} of {len(log.steps)} steps re-batched; ||theta - theta'|| = "
            f"{p.distance:.4g} ({100 * p.relative_distance:.2g}% of ||theta||); log {p.log}"
        )
    c = result.cost
    click.echo(f"gradient evaluations: search {c.search_gradients} ({c.searched} step-splits x "
               f"mu={mu}, plus the original gradient), trajectory {c.trajectory_steps}, "
               f"reconstruction {result.reconstruction_steps}")
    click.echo(f"check a PoR with: tdp pol verify {result.pors[0].log}")


def register(group: click.Group) -> None:
    group.add_command(pol_group)
    group.add_command(repudiate_cmd)
