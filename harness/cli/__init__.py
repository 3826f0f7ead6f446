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
    "harness.cli.shadow_cmd",
)


class UserError(click.ClickException):
    """An error caused by the user's input; printed as one clear line, exit code 1."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tdp")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """tdp: prove that a language model was trained on your data, with exact p-values."""
    from harness.cli.errors import one_line_warnings

    one_line_warnings()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(main)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
