"""The secret seed: written 0600, never through a link; loose modes warned about; a damaged
`.secret` is a one-line error naming what is wrong."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from canaries.canary_set import (
    CanarySetError,
    Plan,
    SecretModeWarning,
    check_secret,
    load_canary_set,
    new_canary_set,
    read_secret,
    save_canary_set,
    secret_path,
)
from canaries.drbg import derive_seed
from canaries.files import OutputError
from canaries.generators import words_spec
from harness.cli import main

SEED = derive_seed("secret-test", "1")


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    cs, seed = new_canary_set(words_spec(5), 3, Plan(counterfactuals=20), SEED)
    return save_canary_set(cs, tmp_path / "c.json", seed)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ('{"purpose": "canaries"}', "no 'seed'"),
        ('["' + "00" * 32 + '"]', "no 'seed'"),
        ('{"seed": "zz' + "0" * 62 + '"}', "not hexadecimal"),
        ('{"seed": "abcd"}', "has 2 bytes, expected 32"),
    ],
)
def test_malformed_secret_is_a_clear_error(saved, body, message):
    secret = secret_path(saved)
    secret.write_bytes(body if isinstance(body, bytes) else body.encode())
    with pytest.raises(CanarySetError, match=message) as e:
        read_secret(secret)
    assert str(secret) in str(e.value)
    r = CliRunner().invoke(main, ["canaries", "verify", str(saved)])
    errors = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert r.exit_code == 1 and len(errors) == 1 and message in errors[0], r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_secret_round_trip_is_quiet_when_private(saved):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_secret(secret_path(saved)) == SEED
        assert "redraws exactly" in check_secret(load_canary_set(saved), saved)


def test_loose_secret_mode_warns_in_one_line(saved):
    secret = secret_path(saved)
    secret.chmod(0o644)
    with pytest.warns(SecretModeWarning, match="others may read it .mode 0644.*chmod 600"):
        assert read_secret(secret) == SEED
    r = CliRunner().invoke(main, ["canaries", "verify", str(saved)])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if "others may read" in ln]
    assert len(lines) == 1 and lines[0].startswith("Warning: "), r.stderr


def test_saving_never_follows_or_chmods_a_linked_secret(tmp_path):
    cs, seed = new_canary_set(words_spec(5), 3, Plan(counterfactuals=20), SEED)
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours")
    target.chmod(0o640)
    path = tmp_path / "c.json"
    secret_path(path).symlink_to(target)
    with pytest.raises(OutputError, match="symbolic link"):
        save_canary_set(cs, path, seed, force=True)
    assert target.read_text() == "not yours" and (target.stat().st_mode & 0o777) == 0o640
    assert not path.exists()  # nothing written: the secret comes first
