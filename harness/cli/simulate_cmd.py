"""`tdp simulate`: power analysis (tiny models with canaries planted r times), set inference."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import user_errors


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers") from None


@click.command("simulate")
@click.option(
    "--mode", type=click.Choice(["power", "set-inference"]), default="power", show_default=True
)
@click.option("--repeats", default="1,2,4,8,16", show_default=True, help="Repetitions r to sweep.")
@click.option("--lengths", default="10", show_default=True, help="Canary lengths to sweep.")
@click.option("--kinds", default="words", show_default=True, help="Canary kinds: words,tokens.")
@click.option("--counts", default="32", show_default=True, help="Numbers of canaries to sweep.")
@click.option("--counterfactuals", "-m", type=int, default=500, show_default=True)
@click.option("--alpha", type=float, default=0.01, show_default=True)
@click.option("--corpus-bytes", type=int, default=300_000, show_default=True)
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option(
    "--users-in", type=int, default=20, show_default=True, help="set-inference: in-world users."
)
@click.option(
    "--users-out",
    type=int,
    default=100,
    show_default=True,
    help="set-inference: out-world test users.",
)
@click.option(
    "--k", "k", type=int, default=8, show_default=True, help="set-inference: documents per user."
)
@click.option(
    "--mark",
    type=click.Choice(["per-document", "per-user"]),
    default="per-document",
    show_default=True,
)
@click.option(
    "--repeat",
    type=int,
    default=1,
    show_default=True,
    help="set-inference: copies of each marked document in training.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results/simulate"),
    show_default=True,
)
@click.option("--progress/--no-progress", default=False)
@user_errors
def simulate_cmd(
    mode,
    repeats,
    lengths,
    kinds,
    counts,
    counterfactuals,
    alpha,
    corpus_bytes,
    epochs,
    users_in,
    users_out,
    k,
    mark,
    repeat,
    seed,
    out,
    progress,
) -> None:
    """Train tiny models with planted canaries and audit them; resumable (cells cached in OUT)."""
    from harness.simulate import (
        SetSimConfig,
        SimConfig,
        power_table,
        run_power,
        run_set_inference,
        summary_numbers,
    )
    from harness.train import TrainConfig

    train = TrainConfig(epochs=epochs, seed=seed)
    if mode == "set-inference":
        res = run_set_inference(
            SetSimConfig(
                users_in=users_in,
                users_out=users_out,
                k=k,
                mode=mark,
                repeat=repeat,
                alpha=alpha,
                corpus_bytes=corpus_bytes,
                seed=seed,
                train=train,
            ),
            out,
            progress,
        )
        click.echo(
            f"TPR at alpha {alpha}: {res['tpr_at_alpha']:.3f}; FPR at alpha: {res['fpr_at_alpha']:.3f}; "
            f"FPR@100%TPR: {res['fpr_at_100_tpr']:.3f}; AUC {res['auc']:.3f}"
        )
        click.echo(f"report: {out / 'set-inference.md'}")
        return
    bad = set(kinds.split(",")) - {"words", "tokens"}
    if bad:
        raise click.BadParameter(f"unknown kinds {sorted(bad)}; use words,tokens")
    cfg = SimConfig(
        repeats=_ints(repeats),
        lengths=_ints(lengths),
        kinds=tuple(kinds.split(",")),
        counts=_ints(counts),
        counterfactuals=counterfactuals,
        alpha=alpha,
        corpus_bytes=corpus_bytes,
        seed=seed,
        train=train,
    )
    rows = run_power(cfg, out, progress)
    click.echo(power_table(rows))
    click.echo(f"summary: {summary_numbers(rows, alpha)}")
    click.echo(f"report: {out / 'power.md'}")


def register(group: click.Group) -> None:
    group.add_command(simulate_cmd)
