"""Every bad command line in tests/bad_cli.py: nonzero exit, one `Error:` line naming the
problem, no traceback (run in one process; as root, without the power to ignore file modes)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.bad_cli import CASES, Outcome, run_driver


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without util-linux setpriv: read-only folders are not")
    p = run_driver(["--print-json"], timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return [Outcome(**{**d, "error_lines": tuple(d["error_lines"])})
            for d in json.loads(p.stdout.splitlines()[-1])]


def test_the_list_covers_every_subcommand():
    from harness.cli import main

    assert len(CASES) >= 75
    words = {c.argv.split()[0] for c in CASES} | {
        " ".join(c.argv.split()[:2]) for c in CASES if c.argv.startswith("canaries")
    }
    commands = set(main.commands) | {f"canaries {n}" for n in main.commands["canaries"].commands}
    assert commands <= words, commands - words


def test_no_bad_command_line_ends_in_a_traceback(outcomes):
    crashed = [o.name for o in outcomes if o.traceback]
    assert not crashed, crashed


def test_each_bad_command_line_says_what_is_wrong_in_one_line(outcomes):
    ran = [o for o in outcomes if not o.skipped]
    assert len(ran) >= 75
    unclear = [(o.name, o.error_lines) for o in ran if not o.ok]
    assert not unclear, unclear
    assert not [o for o in outcomes if o.skipped], "read-only folders were writable"
