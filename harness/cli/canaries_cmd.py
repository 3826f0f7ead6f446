"""`tdp canaries new | verify | inject | embed`."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import user_errors


@click.group("canaries")
def canaries_group() -> None:
    """Create, verify and plant canary sets."""


@canaries_group.command("new")
@click.option("--kind", type=click.Choice(["words", "tokens"]), default="words", show_default=True)
@click.option("--count", "-k", type=int, required=True, help="Number of canaries K.")
@click.option("--length", "-l", type=int, required=True, help="Units (words or tokens) per canary.")
@click.option("--prefix-length", type=int, default=0, show_default=True, help="Public prefix units (extraction).")
@click.option("--tokenizer", help="Tokenizer path or hub id (kind=tokens).")
@click.option("--wordlist", default="eff-large-v1", show_default=True)
@click.option("--score", default="loss", show_default=True, help="Pre-registered score function.")
@click.option("--statistic", default="rank-sum", show_default=True, help="Pre-registered test statistic.")
@click.option("--counterfactuals", "-m", type=int, default=1000, show_default=True,
              help="Pre-registered M (for statistic set-mean: the number of out-world users).")
@click.option("--alpha", type=float, default=0.01, show_default=True)
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--force", is_flag=True, help="Overwrite an existing canary file.")
@user_errors
def new_cmd(kind, count, length, prefix_length, tokenizer, wordlist, score, statistic, counterfactuals, alpha, out, force):
    """Draw K secret random canaries and commit to them with a pre-registered plan."""
    from canaries.canary_set import Plan, new_canary_set, save_canary_set, secret_path
    from canaries.generators import tokens_spec, words_spec
    from harness.stats.scores import get_score

    if out.exists() and not force:
        raise click.ClickException(f"{out} exists; refusing to overwrite a canary set (use --force)")
    get_score(score)
    from harness.stats import STATISTICS

    if statistic not in STATISTICS:
        raise click.BadParameter(f"unknown statistic {statistic!r}", param_hint="--statistic")
    if kind == "tokens":
        if not tokenizer:
            raise click.BadParameter("kind=tokens needs --tokenizer", param_hint="--tokenizer")
        spec = tokens_spec(length, tokenizer, prefix_length)
    else:
        spec = words_spec(length, prefix_length, wordlist)
    task = "set-inference" if statistic == "set-mean" else "canary-rank"
    plan = Plan(task=task, score=score, statistic=statistic, counterfactuals=counterfactuals, alpha=alpha)
    cs, seed = new_canary_set(spec, count, plan)
    save_canary_set(cs, out, seed)
    click.echo(f"wrote {count} canaries to {out}")
    click.echo(f"commitment: {cs.commitment}")
    click.echo(f"secret seed: {secret_path(out)} (mode 0600; keep it private, never publish it)")
    click.echo("Publish or timestamp the commitment now; keep the canary file private until the audit.")


@canaries_group.command("verify")
@click.argument("file", type=click.Path(path_type=Path))
@user_errors
def verify_cmd(file: Path) -> None:
    """Recompute a canary file's commitment and check every canary against its spec."""
    from canaries.canary_set import check_secret, load_canary_set

    cs = load_canary_set(file)
    click.echo(f"OK {file}: commitment {cs.commitment}")
    click.echo(f"   {len(cs.canaries)} canaries conform to the {cs.spec.kind} spec (length {cs.spec.length})")
    click.echo(f"   {check_secret(cs, file)}")


@canaries_group.command("inject")
@click.option("--canaries", "canary_file", type=click.Path(path_type=Path), required=True)
@click.option("--corpus", type=click.Path(path_type=Path), required=True, help="Directory of .txt or a .jsonl file.")
@click.option("--repeat", "-r", type=int, default=1, show_default=True)
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True)
@click.option("--seed", help="Hex seed for the placement (default: fresh, recorded in the manifest).")
@user_errors
def inject_cmd(canary_file: Path, corpus: Path, repeat: int, out: Path, seed: str | None) -> None:
    """Write a copy of a corpus with each canary inserted r times at random positions."""
    from canaries.canary_set import load_canary_set
    from canaries.inject import inject_corpus, manifest_path

    cs = load_canary_set(canary_file)
    m = inject_corpus(corpus, cs, repeat, out, bytes.fromhex(seed) if seed else None)
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

    try:
        seed_bytes = bytes.fromhex(seed) if seed else None
    except ValueError:
        raise click.BadParameter(f"{seed!r} is not hexadecimal", param_hint="--seed") from None
    try:
        cs = load_canary_set(canary_file)
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
