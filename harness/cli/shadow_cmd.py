"""`tdp shadow train | show | timestamp | attack`: shadow sets and the attacks that use them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.errors import hex_seed, user_errors


@click.group("shadow")
def shadow_group() -> None:
    """Shadow (reference) models on random halves of a candidate pool, for LiRA and RMIA."""


@shadow_group.command("train")
@click.option("--pool", required=True, type=click.Path(path_type=Path),
              help="Candidate texts (JSONL with 'text', or a folder of .txt): each model trains "
              "on a random half.")
@click.option("--population", type=click.Path(path_type=Path),
              help="Texts no model trains on (RMIA's population), same formats.")
@click.option("--models", "-n", "n_models", type=click.IntRange(min=1), default=16,
              show_default=True, help="Shadow models (pairs on complementary halves).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Shadow-set folder (resumed when it holds this plan).")
@click.option("--seed", help="Design seed in hex, >= 16 bytes (default: derived from the pool).")
@click.option("--init", "init_from", help="Fine-tune this checkpoint (folder or hub id) instead "
              "of training tiny models from scratch; uses the GPU when there is one.")
@click.option("--vocab-size", type=click.IntRange(min=257), default=1024, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--n-layer", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--n-embd", type=click.IntRange(min=8), default=64, show_default=True)
@click.option("--n-head", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--block-size", type=click.IntRange(min=8), default=128, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Learning rate (default 3e-3 from scratch, 5e-5 with --init).")
@click.option("--force", is_flag=True, help="Replace a folder that holds another plan.")
@click.option("--no-progress", is_flag=True)
@user_errors
def train_cmd(pool, population, n_models, out, seed, init_from, vocab_size, epochs, n_layer,
              n_embd, n_head, block_size, batch_size, lr, force, no_progress) -> None:
    """Train (or resume) a shadow set; its manifest records every model's half and identity."""
    from canaries.corpus import read_corpus
    from canaries.drbg import derive_seed
    from harness.mi.shadow import load_shadow_set, texts_digest
    from harness.mi.shadow_train import ShadowRequest, train_shadow_set
    from harness.train import TrainConfig

    if n_embd % n_head:
        raise click.BadParameter(f"{n_embd} is not divisible by --n-head {n_head}",
                                 param_hint="--n-embd")
    texts = tuple(read_corpus(pool).texts)
    pop = tuple(read_corpus(population).texts) if population else ()
    design = hex_seed(seed) or derive_seed("tdp-shadow-default-seed", texts_digest(texts))
    config = TrainConfig(n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block_size,
                         epochs=epochs, batch_size=batch_size,
                         lr=lr or (5e-5 if init_from else 3e-3))
    req = ShadowRequest(texts, n_models, config, design, pop, init_from, vocab_size)
    s = train_shadow_set(out, req, force=force, progress=not no_progress, say=click.echo)
    s = load_shadow_set(s.root)
    click.echo(f"shadow set {s.root}: {len(s.trained)} models, digest {s.digest()}")


@shadow_group.command("show")
@click.argument("folder", type=click.Path(path_type=Path))
@user_errors
def show_cmd(folder: Path) -> None:
    """Print a shadow set's plan, its models and their identities, and its digest."""
    from harness.mi.shadow import load_shadow_set

    s = load_shadow_set(folder)
    p = s.plan
    click.echo(f"shadow set {s.root} (created {s.created}, design {p.design}, seed {p.seed})")
    click.echo(f"pool: {p.pool_count} texts (sha256 {p.pool_sha256}); population: "
               f"{p.population_count} texts")
    click.echo(f"training: {json.dumps(p.train, sort_keys=True)}"
               + (f", fine-tuning {p.init_from}" if p.init_from else ""))
    for m in s.models:
        state = f"identity {m.identity}" if m.done else "not trained"
        click.echo(f"  {m.name}: {m.n_members} texts, {state}")
    if len(s.trained) == len(s.models):
        click.echo(f"digest {s.digest()}; {len(s.timestamps)} timestamp(s)")


@shadow_group.command("timestamp")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--tsa-url", help="Send the request to this RFC 3161 TSA (needs a network).")
@click.option("--reply", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The TSA's reply (.tsr) to the request this command wrote (FOLDER/shadow.tsq).")
@click.option("--chain", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The TSA's certificate chain (PEM, TSA certificate first, up to its root).")
@click.option("--local-tsa", type=click.Path(path_type=Path, file_okay=False),
              help="Stamp with a LOCAL TEST TSA kept in this folder (demos and tests only).")
@user_errors
def timestamp_cmd(folder: Path, tsa_url, reply, chain, local_tsa) -> None:
    """Prove when a complete shadow set existed: an RFC 3161 timestamp over its digest.

    Needed before the set may calibrate canaries: it must predate the canary set's beacon round.
    """
    from canaries.files import atomic_write_bytes
    from harness.mi.shadow import load_shadow_set
    from harness.mi.shadow_canary import add_shadow_timestamp
    from harness.protocol.timestamp import record_from_reply, request_from_tsa, timestamp_request

    s = load_shadow_set(folder)
    digest = s.digest()
    tsq = s.root / "shadow.tsq"
    if local_tsa:
        from harness.protocol.local_tsa import LocalTSA

        exists = (local_tsa / "tsa.pem").exists()
        tsa = LocalTSA(local_tsa) if exists else LocalTSA.create(local_tsa)
        request = timestamp_request(digest)
        record = record_from_reply(tsa.stamp(request), digest, tsa.chain_pem, request)
    elif tsa_url or reply:
        if chain is None:
            raise click.UsageError("--chain TSA-CHAIN.pem is needed to verify the TSA's reply")
        request = timestamp_request(digest) if tsa_url else (
            tsq.read_bytes() if tsq.exists() else None)
        answer = request_from_tsa(tsa_url, request) if tsa_url else reply.read_bytes()
        record = record_from_reply(answer, digest, chain.read_bytes(), request, tsa_url)
    else:
        atomic_write_bytes(tsq, timestamp_request(digest))
        click.echo(f"wrote {tsq}: send it to an RFC 3161 TSA, then run this command again with "
                   "--reply and --chain")
        return
    s, info = add_shadow_timestamp(s, record)
    click.echo(f"timestamped shadow set {s.root} (digest {digest}): {info.gen_time.isoformat()} "
               f"by {info.tsa_subject}")


@shadow_group.command("attack")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--model", required=True, help="Target model spec, e.g. hf:./model.")
@click.option("--members", required=True, type=click.Path(path_type=Path),
              help="Texts known to be members (JSONL or folder of .txt).")
@click.option("--nonmembers", required=True, type=click.Path(path_type=Path),
              help="Texts known to be non-members.")
@click.option("--attack", "attacks", multiple=True,
              help="Attack name (repeatable; default: every attack the set supports).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--population-offset", is_flag=True,
              help="Subtract each model's median statistic on the set's population first "
              "(LiRA and reference calibration): removes model-level shifts.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@user_errors
def attack_cmd(folder, model, members, nonmembers, attacks, out, population_offset, bootstrap,
               force) -> None:
    """Run shadow-model attacks on labelled texts: metrics (estimates) and a log-log ROC."""
    from harness.mi.attack_run import run_labelled_attack

    path = run_labelled_attack(folder, model, members, nonmembers, attacks, out, bootstrap, force,
                               population_offset)
    click.echo(f"wrote {path}")


def register(group: click.Group) -> None:
    group.add_command(shadow_group)
