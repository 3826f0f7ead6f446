"""Safe writes: atomic files with their final mode, no writing through links, folder swaps."""

from __future__ import annotations

import os
import stat

import pytest

from canaries.files import (
    OutputError,
    atomic_write_text,
    check_writable_dir,
    clean_leftovers,
    new_tmp_dir,
    swap_in_dir,
)


def test_atomic_write_sets_mode_and_refuses_links_and_overwrites(tmp_path):
    p = atomic_write_text(tmp_path / "secret", "s", mode=0o600)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    with pytest.raises(OutputError, match="exists"):
        atomic_write_text(p, "t", force=False)
    target = tmp_path / "target"
    target.write_text("keep")
    os.chmod(target, 0o644)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OutputError, match="symbolic link"):
        atomic_write_text(link, "x", mode=0o600)
    assert target.read_text() == "keep" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".tdp-tmp-")]


def test_swap_in_dir_keeps_old_until_new_is_complete_and_refuses_without_force(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    tmp = new_tmp_dir(final)
    (tmp / "new.txt").write_text("new")
    with pytest.raises(OutputError, match="--force"):
        swap_in_dir(tmp, final, force=False)
    assert (final / "old.txt").exists()
    swap_in_dir(tmp, final, force=True)
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    left = new_tmp_dir(final)  # a killed run's leftover
    assert clean_leftovers(final) == [left] and not left.exists()


def test_check_writable_dir_names_the_problem(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(OutputError, match="is a file"):
        check_writable_dir(f / "sub")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores modes
            pytest.skip("running as a user who can write read-only folders")
        with pytest.raises(OutputError, match="not writable"):
            check_writable_dir(ro / "out")
    finally:
        os.chmod(ro, 0o700)
