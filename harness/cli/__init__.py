"""`tdp`: one click group; each subcommand lives in its own module under harness/cli/."""

from __future__ import annotations

import logging
import sys

import click

from harness import __version__

#: modules whose `register(group)` adds their commands; one line per command module
COMMAND_MODULES = (
    "harness.cli.canaries_cmd",
    "harness.cli.protocol_cmd",
    "harness.cli.audit_cmd",
    "harness.cli.demo_cmd",
    "harness.cli.tasks_cmd",
    "harness.cli.serve_cmd",
    "harness.cli.survival_cmd",
    "harness.cli.verify_cmd",
    "harness.cli.calibrate_cmd",
    "harness.cli.simulate_cmd",
    "harness.cli.evidence_cmd",
    "harness.cli.pol_cmd",
    "harness.cli.leaderboard_cmd",
    "harness.cli.shadow_cmd",
)


class UserError(click.ClickException):
    """An error caused by the user's input; printed as one clear line, exit code 1."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tdp")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.option(
    "--no-custody",
    is_flag=True,
    help="Do not append this command to the custody logs (custody.jsonl) of its folders.",
)
@click.pass_context
def main(ctx: click.Context, verbose: bool, no_custody: bool) -> None:
    """tdp: prove that a language model was trained on your data, with exact p-values."""
    from harness.cli.errors import one_line_warnings
    from harness.evidence.custody_hook import OFF

    one_line_warnings()
    ctx.meta[OFF] = no_custody
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    import importlib

    from harness.evidence.custody_hook import instrument

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(main)
    instrument(main)  # every command records its chain of custody (harness/evidence/custody.py)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
