"""`tdp survival`: which HTML carriers reach the text of real extractors and corpus filters."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.errors import user_errors


@click.command("survival")
@click.option(
    "--manifest",
    "manifests",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Embed manifest (CANARY_FILE.embed.json); repeatable, each is one crawl.",
)
@click.option(
    "--extractor",
    "extractors",
    multiple=True,
    help="Extractor to run (repeatable; default: all): trafilatura-fineweb, resiliparse-main, "
    "resiliparse-all, justext, html2text, bs4-get-text.",
)
@click.option(
    "--no-filters", is_flag=True, help="Only extract; skip datatrove's filters and dedup."
)
@click.option(
    "--filters-on",
    "filters_on",
    multiple=True,
    help="Run the filter chain only after these extractors (default: all that run).",
)
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Per-page timeout of datatrove's trafilatura sandbox, seconds (FineWeb used 1 s on its hardware).",
)
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True)
@user_errors
def survival_cmd(manifests, extractors, no_filters, filters_on, timeout, out) -> None:
    """Measure, per carrier, the fraction of embedded canaries that reach the extracted text verbatim."""
    from canaries.html import HtmlEmbedError
    from harness.provenance import now, provenance
    from harness.survival import (
        EXTRACTORS,
        SurvivalError,
        cells_to_dicts,
        measure_manifest,
        package_versions,
        render_markdown,
        tabulate,
    )

    names = list(extractors) or list(EXTRACTORS)
    unknown = [n for n in names if n not in EXTRACTORS]
    if unknown:
        raise click.BadParameter(
            f"unknown extractor(s) {unknown}; known: {', '.join(EXTRACTORS)}",
            param_hint="--extractor",
        )
    outcomes = []
    try:
        for m in manifests:
            click.echo(f"measuring {m} ...", err=True)
            outcomes += measure_manifest(
                m, names, not no_filters, timeout, list(filters_on) or None
            )
    except (HtmlEmbedError, SurvivalError) as e:
        raise click.ClickException(str(e)) from e
    cells = tabulate(outcomes)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": "tdp-survival-matrix",
        "format_version": 1,
        "created": now(),
        "manifests": [str(m) for m in manifests],
        "extractors": {n: EXTRACTORS[n].settings for n in names},
        "packages": package_versions(),
        "provenance": provenance(),
        "cells": cells_to_dicts(cells),
        "copies": [o.__dict__ for o in outcomes],
    }
    (out / "survival.json").write_text(json.dumps(doc, indent=1, default=list) + "\n", "utf-8")
    (out / "survival.md").write_text(render_markdown(cells) + "\n", "utf-8")
    click.echo(render_markdown([c for c in cells if c.stage == "extracted"]))
    click.echo(f"matrix: {out / 'survival.md'} and {out / 'survival.json'}")


def register(group: click.Group) -> None:
    group.add_command(survival_cmd)
