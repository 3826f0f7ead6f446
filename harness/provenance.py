"""Provenance recorded in every report: harness version and git hash, environment, time."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import harness


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_hash() -> str | None:
    """Commit of the harness source tree, with '-dirty' if it has uncommitted changes."""
    root = Path(harness.__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": {
            p: _version(p)
            for p in ("torch", "transformers", "accelerate", "numpy", "scipy", "vllm", "tokenizers")
        },
    }
    try:
        import torch

        if torch.cuda.is_available():
            env["cuda_device"] = torch.cuda.get_device_name(0)
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return env


def provenance(command: list[str] | None = None) -> dict[str, Any]:
    from harness.stats.scores import SCORE_DEFINITIONS

    return {
        "harness_version": harness.__version__,
        "score_definitions": SCORE_DEFINITIONS,
        "git": git_hash(),
        "command": command if command is not None else sys.argv,
        "environment": environment(),
    }
