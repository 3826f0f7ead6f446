"""`tdp survival`: which HTML carriers reach the text of real extractors and corpus filters."""

from __future__ import annotations

import json
import os
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
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Per-page timeout of datatrove's trafilatura sandbox, seconds (FineWeb used 1 s on its "
    "hardware).",
)
@click.option(
    "--doc-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds each per-page extractor and each filter may spend on one document; a document "
    "over it is stopped, counted as dropped and listed in the report (0: no limit, no worker).",
)
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--force", is_flag=True, help="Replace an existing result folder.")
@user_errors
def survival_cmd(
    manifests, extractors, no_filters, filters_on, timeout, doc_timeout, out, force
) -> None:
    """Measure, per carrier, the fraction of embedded canaries that reach the extracted text
    verbatim."""
    from canaries.files import (
        atomic_write_text,
        check_new_output,
        check_writable_dir,
        clean_leftovers,
        new_tmp_dir,
        remove_path,
        swap_in_dir,
    )
    from canaries.html import HtmlEmbedError
    from harness.provenance import now, provenance
    from harness.survival.pipeline import EXTRACTORS, SurvivalError, measure, package_versions
    from harness.survival.report import cells_to_dicts, render_markdown, tabulate

    names = list(extractors) or list(EXTRACTORS)
    unknown = [n for n in names if n not in EXTRACTORS]
    if unknown:
        raise click.BadParameter(
            f"unknown extractor(s) {unknown}; known: {', '.join(EXTRACTORS)}",
            param_hint="--extractor",
        )
    clean_leftovers(out)
    check_new_output(out, force, "result folder")
    check_writable_dir(out.parent, "result folder")
    outcomes, stopped = [], []
    try:
        for m in manifests:
            click.echo(f"measuring {m} ...", err=True)
            got = measure(
                m, names, not no_filters, timeout, list(filters_on) or None, doc_timeout or None
            )
            outcomes += got.outcomes
            stopped += got.stopped
    except (HtmlEmbedError, SurvivalError) as e:
        raise click.ClickException(str(e)) from e
    cells = tabulate(outcomes)
    doc = {
        "format": "tdp-survival-matrix",
        "format_version": 2,
        "created": now(),
        "manifests": [str(m) for m in manifests],
        "extractors": {n: EXTRACTORS[n].settings for n in names},
        "doc_timeout_s": doc_timeout or None,
        "packages": package_versions(),
        "provenance": provenance(),
        "cells": cells_to_dicts(cells),
        "copies": [o.__dict__ for o in outcomes],
        "stopped": [s.__dict__ for s in stopped],
    }
    rows = [(s.page, s.extractor, s.stage, s.limit_s) for s in stopped]
    tmp = new_tmp_dir(out)
    try:
        atomic_write_text(tmp / "survival.json", json.dumps(doc, indent=1, default=list) + "\n")
        atomic_write_text(tmp / "survival.md", render_markdown(cells, stopped=rows) + "\n")
        os.chmod(tmp, 0o755)  # built private; published like any result folder
        swap_in_dir(tmp, out, force, "result folder")
    finally:
        if tmp.exists():
            remove_path(tmp)
    click.echo(render_markdown([c for c in cells if c.stage == "extracted"]))
    for s in stopped:
        click.echo(f"stopped: {s.page} ({s.extractor}, {s.stage}, over {s.limit_s:g} s)", err=True)
    click.echo(f"matrix: {out / 'survival.md'} and {out / 'survival.json'}")


def register(group: click.Group) -> None:
    group.add_command(survival_cmd)
