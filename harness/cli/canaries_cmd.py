"""`tdp canaries new | verify | inject | embed`."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import hex_seed, user_errors


@click.group("canaries")
def canaries_group() -> None:
    """Create, verify and plant canary sets."""


@canaries_group.command("new")
@click.option("--kind", type=click.Choice(["words", "tokens"]), default="words", show_default=True)
@click.option("--count", "-k", type=click.IntRange(min=1), required=True,
              help="Number of canaries K.")
@click.option("--length", "-l", type=click.IntRange(min=1), required=True,
              help="Units (words or tokens) per canary.")
@click.option("--prefix-length", type=click.IntRange(min=0), default=0, show_default=True,
              help="Public prefix units (extraction).")
@click.option("--tokenizer", help="Tokenizer path or hub id (kind=tokens).")
@click.option("--wordlist", default="eff-large-v1", show_default=True)
@click.option("--score", default="loss", show_default=True, help="Pre-registered score function.")
@click.option("--statistic", default="rank-sum", show_default=True, help="Pre-registered test statistic.")
@click.option("--counterfactuals", "-m", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Pre-registered M (for statistic set-mean: the number of out-world users).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.01,
              show_default=True)
@click.option("--reference", "reference_spec",
              help="Reference model spec, committed by identity (weights and tokenizer content); "
              "needed when the score uses a reference (ref_ratio).")
@click.option("--beacon", "beacon_arg", default="drand:quicknet", show_default=True,
              help="Public randomness chain whose future round will choose the canaries.")
@click.option("--beacon-delay", type=click.FloatRange(min=0), default=600, show_default=True,
              help="Seconds from now to the pinned round: time to get the timestamp first.")
@click.option("--local-beacon", type=click.Path(path_type=Path, dir_okay=False),
              help="Use a LOCAL TEST beacon with this key file (created if absent): demos and tests "
              "only; reports say it is not public randomness.")
@click.option("--format-version", type=click.Choice(["2", "1"]), default="2", show_default=True,
              help="1: the legacy format (canaries drawn now, no beacon, no timestamp).")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--force", is_flag=True, help="Overwrite an existing canary file and its secret.")
@user_errors
def new_cmd(kind, count, length, prefix_length, tokenizer, wordlist, score, statistic, counterfactuals,
            alpha, reference_spec, beacon_arg, beacon_delay, local_beacon, format_version, out, force):
    """Commit to K secret random canaries and a pre-registered plan (protocol v2 by default)."""
    from canaries.canary_set import Plan, new_canary_set, save_canary_set, secret_path
    from canaries.files import check_new_output, check_writable_dir
    from canaries.generators import tokens_spec, words_spec
    from harness.stats import STATISTICS
    from harness.stats.scores import get_score

    check_new_output(out, force, "canary file")
    check_new_output(secret_path(out), force, "secret file")
    check_writable_dir(out.parent)
    get_score(score)
    from harness.stats.plan import needs_reference

    if statistic not in STATISTICS:
        raise click.BadParameter(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}",
                                 param_hint="--statistic")
    if prefix_length >= length:
        raise click.BadParameter(f"must be shorter than --length ({length})",
                                 param_hint="--prefix-length")
    if kind == "tokens":
        if not tokenizer:
            raise click.BadParameter("kind=tokens needs --tokenizer", param_hint="--tokenizer")
        from harness.backends.hub import require_hub_or_cache

        require_hub_or_cache(tokenizer, "tokenizer")
        spec = tokens_spec(length, tokenizer, prefix_length)
    else:
        spec = words_spec(length, prefix_length, wordlist)
    task = "set-inference" if statistic == "set-mean" else "canary-rank"
    reference = None
    if reference_spec:
        from harness.backends.identity import identity_of_spec

        ident = identity_of_spec(reference_spec)
        if ident is None:
            raise click.BadParameter("that server publishes no model identity; a reference must be "
                                     "committed by identity", param_hint="--reference")
        reference = {"spec": reference_spec, "identity": ident.digest()}
    elif needs_reference(score) and format_version == "2":
        raise click.UsageError(f"score {score!r} uses a reference model: commit it now with "
                               "--reference SPEC (a reference chosen later could be fitted to the "
                               "counterfactuals)")
    plan = Plan(task=task, score=score, statistic=statistic, counterfactuals=counterfactuals,
                alpha=alpha, reference=reference)
    if format_version == "1":
        cs, seed = new_canary_set(spec, count, plan)
        save_canary_set(cs, out, seed, force=force)
        click.echo(f"wrote {count} canaries to {out} (format v1: no beacon, no timestamp)")
        click.echo(f"commitment: {cs.commitment}")
        click.echo(f"secret seed: {secret_path(out)} (mode 0600; keep it private)")
        return
    from harness.protocol.pool import commit, iso_time, pinned_round_time

    chain = _beacon_chain(beacon_arg, local_beacon)
    cs, seed = commit(spec, count, plan, chain, beacon_delay)
    save_canary_set(cs, out, seed, force=force)

    click.echo(f"wrote {out}: a commitment to {count} canaries and {cs.pool_size - count} "
               "counterfactuals, not drawn yet")
    click.echo(f"commitment: {cs.commitment}")
    click.echo(f"secret seed: {secret_path(out)} (mode 0600; keep it private until the claim)")
    click.echo(f"beacon: {chain.name} round {cs.beacon['round']}, published at "
               f"{iso_time(pinned_round_time(cs))}{'' if chain.public else ' (LOCAL TEST beacon)'}")
    click.echo("Next: publish the commitment and timestamp it before that time "
               f"(`tdp canaries timestamp {out} --tsa-url URL --chain CHAIN.pem`), then "
               f"`tdp canaries assign {out}` once the round is out.")


def _beacon_chain(beacon_arg: str, local_beacon: Path | None):
    """The chain named by --beacon, or a local test beacon's (its key file made if absent)."""
    from harness.protocol.beacon import get_chain, parse_beacon_arg

    if local_beacon is not None:
        from harness.protocol.local_beacon import LocalTestBeacon

        if not local_beacon.exists():
            LocalTestBeacon.create().save(local_beacon)
        return LocalTestBeacon.load(local_beacon).chain
    name, rnd = parse_beacon_arg(beacon_arg)
    if rnd is not None:
        raise click.BadParameter("the round is chosen from --beacon-delay, not named",
                                 param_hint="--beacon")
    return get_chain(name)


@canaries_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@user_errors
def verify_cmd(file: Path) -> None:
    """Recompute a canary file's commitment, check its items, and (v2) its protocol chain."""
    from canaries.canary_set import check_secret, load_canary_set, read_secret, secret_path
    from harness.protocol.pool import check_protocol

    cs = load_canary_set(file)
    click.echo(f"OK {file}: commitment {cs.commitment} (format v{cs.version})")
    click.echo(f"   {len(cs.canaries)} canaries conform to the {cs.spec.kind} spec "
               f"(length {cs.spec.length})")
    click.echo(f"   {check_secret(cs, file)}")
    if cs.version == 2:
        seed = read_secret(secret_path(file)) if secret_path(file).exists() else None
        steps = check_protocol(cs, seed)
        for step in steps:
            click.echo(f"   [{step.verdict:>4}] {step.name}: {step.detail}")
        if any(step.verdict == "FAIL" for step in steps):
            raise SystemExit(1)


@canaries_group.command("inject")
@click.option("--canaries", "canary_file", type=click.Path(dir_okay=False, path_type=Path),
              required=True)
@click.option("--corpus", type=click.Path(path_type=Path), required=True,
              help="Directory of .txt or a .jsonl file.")
@click.option("--repeat", "-r", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True)
@click.option("--seed", help="Hex seed for the placement, at least 16 bytes "
              "(default: fresh, recorded in the manifest).")
@click.option("--force", is_flag=True, help="Replace an existing output corpus and manifest.")
@user_errors
def inject_cmd(
    canary_file: Path, corpus: Path, repeat: int, out: Path, seed: str | None, force: bool
) -> None:
    """Write a copy of a corpus with each canary inserted r times at random positions."""
    from canaries.canary_set import load_canary_set
    from canaries.inject import check_inject_output, inject_corpus, manifest_path

    placement_seed = hex_seed(seed)
    check_inject_output(corpus, out, force)
    cs = load_canary_set(canary_file)
    cs.require_assigned()
    m = inject_corpus(corpus, cs, repeat, out, placement_seed, force)
    click.echo(f"wrote {out}: {len(m.insertions)} insertions into {m.documents} documents")
    click.echo(f"manifest: {manifest_path(out)}")


@canaries_group.command("embed")
@click.option("--canaries", "canary_file", type=click.Path(path_type=Path), required=True)
@click.option("--pages", type=click.Path(path_type=Path), required=True, help="An HTML page or a directory of pages.")
@click.option("--carrier", "carriers", multiple=True, required=True,
              help="Carrier name (repeatable: assigned round-robin over the canaries). See `tdp canaries carriers`.")
@click.option("--repeat", "-r", type=int, default=1, show_default=True, help="Pages per canary (one canary per page).")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="New directory (or file) for the pages.")
@click.option("--seed", help="Hex seed for page and paragraph choice (default: fresh, recorded in the manifest).")
@click.option("--max-bytes", type=int, default=5_000_000, show_default=True, help="Larger pages are refused.")
@click.option("--min-chars", type=int, default=120, show_default=True, help="Smallest paragraph that may host a canary.")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest path (default: CANARY_FILE.embed.json, next to the canary file).")
@click.option("--force", is_flag=True,
              help="Replace an existing output and manifest (the old ones are removed only once "
                   "the new ones are complete).")
@click.option("--follow-links-inside", is_flag=True,
              help="Read pages through symbolic links whose target stays inside the pages folder "
                   "(other links are never followed).")
@click.option("--page-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds to embed one page; a page over it is skipped.")
@user_errors
def embed_cmd(canary_file, pages, carriers, repeat, out, seed, max_bytes, min_chars, manifest,
              force, follow_links_inside, page_timeout) -> None:
    """Hide each canary in HTML pages through the named carriers; the rest of each page is unchanged."""
    from canaries.canary_set import load_canary_set
    from canaries.embed import TooFewPages, embed_pages, manifest_path_for
    from canaries.html import HtmlEmbedError

    seed_bytes = hex_seed(seed)
    try:
        cs = load_canary_set(canary_file)
        cs.require_assigned()
        m = embed_pages(pages, cs, canary_file, list(carriers), out, repeat, seed_bytes, max_bytes,
                        min_chars, manifest, force=force, follow_links_inside=follow_links_inside,
                        page_timeout=page_timeout)
    except TooFewPages as e:
        for page, why in e.refused:
            click.echo(f"skipped {page}: {why}", err=True)
        raise click.ClickException(str(e)) from e
    except HtmlEmbedError as e:
        raise click.ClickException(str(e)) from e
    for page, why in m.errors:
        click.echo(f"skipped {page}: {why}", err=True)
    click.echo(f"wrote {out}: {len(m.placements)} canary copies in {len(m.placements)} pages, "
               f"{len(m.untouched)} pages unchanged, {len(m.errors)} pages skipped")
    click.echo(f"manifest: {manifest or manifest_path_for(canary_file)}")


@canaries_group.command("carriers")
def carriers_cmd() -> None:
    """List the HTML carriers `tdp canaries embed` knows."""
    from canaries.html import CARRIERS

    for c in CARRIERS.values():
        click.echo(f"{c.name:18} {c.placement:9} {c.description}")


def register(group: click.Group) -> None:
    group.add_command(canaries_group)
