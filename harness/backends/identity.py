"""A model's identity by content: its weight tensors and its tokenizer, not its files or name.

The identity seeds audits and names a committed reference model, so it must be the same for
every way one model is saved (one file, shards, `.bin`, a hub branch or its commit) and must not
change when a file is added to the folder or a tokenizer is used with padding: see
`tensor_digest` for the weights and `canaries.tokenizer_identity` for the tokenizer.
`identity_of_spec` computes it from a model spec without building the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from canaries.tokenizer_identity import tokenizer_digest
from harness.backends.base import BackendError, ModelIdentity
from harness.backends.hub import looks_local
from harness.backends.spec import ModelSpec, parse_model_spec
from harness.backends.tensor_digest import (
    index_shards,
    pick_weight_names,
    weight_files,
    weights_digest,
)

log = logging.getLogger(__name__)

#: the small files a hub snapshot needs besides weights: config, indexes, tokenizer
_HUB_META = ["*.json", "*.txt", "*.model", "tokenizer*"]
_HUB_TIMEOUT_S = 10.0


def identity_of_dir(directory: str | Path, tokenizer: Any = None) -> ModelIdentity:
    """Identity of a model folder; `tokenizer` (already loaded) saves loading it again."""
    d = Path(directory)
    if tokenizer is None:
        from harness.backends.encoding import load_tokenizer

        tokenizer = load_tokenizer(str(d))
    return ModelIdentity(weights_digest(weight_files(d)), tokenizer_digest(tokenizer))


def config_digest(directory: str | Path) -> str | None:
    """sha256 of config.json's canonical content (minus the writer's version); it changes the
    numbers without entering the identity, so it belongs in cache keys. None without one."""
    try:
        cfg = json.loads((Path(directory) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(cfg, dict):
        cfg = {k: v for k, v in cfg.items() if k not in ("transformers_version", "_name_or_path")}
    blob = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def identity_of_spec(spec: str | ModelSpec) -> ModelIdentity | None:
    """Identity of the model a spec names, from its files, without building the model.

    `hf:`/`vllm:` local folder or hub id (@revision resolved through the hub cache; the hub is
    asked only when reachable). `openai:` the identity `tdp serve` publishes in /v1/models;
    None for a server that publishes none (the caller decides what that means).
    """
    from harness.backends import BACKENDS

    if isinstance(spec, str):
        spec = parse_model_spec(spec, tuple(BACKENDS))
    if spec.backend == "openai":
        from harness.backends.openai_compat import served_identity

        return served_identity(spec)
    if spec.backend not in ("hf", "vllm"):
        raise BackendError(f"no identity rule for backend {spec.backend!r}")
    return identity_of_dir(model_dir(spec.model, spec.revision))


# --- where a model's files are ----------------------------------------------------------------
def model_dir(model: str, revision: str | None = None, local_only: bool = False) -> Path:
    """The folder holding a model's files: the folder itself, or a hub snapshot.

    A hub id is looked up on the hub when it answers within a short timeout (weights are
    downloaded if not cached); with no network, or `local_only`, or HF_HUB_OFFLINE, only the
    local hub cache is used, and a model missing from it fails at once.
    """
    if looks_local(model):
        path = Path(model).expanduser()
        if not path.is_dir():
            raise BackendError(f"model directory not found: {model}")
        return path.resolve()
    from huggingface_hub import constants

    if local_only or constants.is_offline_mode():
        why = "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else "asked for local files"
        return _cached_snapshot(model, revision, why)
    listing = _hub_listing(model, revision)
    if listing is None:
        return _cached_snapshot(model, revision, "no network (the hub did not answer)")
    commit, names = listing
    return _download(model, commit, names)


def _cached_snapshot(model: str, revision: str | None, why: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(model, revision=revision, local_files_only=True)
    except (LocalEntryNotFoundError, ValueError, OSError) as e:
        raise BackendError(
            f"hub model {model!r} (revision {revision or 'main'}): {why}, and it is not in the "
            "local hub cache"
        ) from e
    log.info("hub model %s: %s; using the local hub cache", model, why)
    return Path(path)


def _hub_listing(model: str, revision: str | None) -> tuple[str, set[str]] | None:
    """(commit, file names) from the hub, or None when the hub cannot be reached."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi().model_info(model, revision=revision, timeout=_HUB_TIMEOUT_S)
    except HfHubHTTPError as e:  # the hub answered: unknown repo, revision, gated, ...
        raise BackendError(f"hub model {model!r} (revision {revision}): {e}") from e
    except Exception as e:  # transport errors come as httpx, OSError or hub offline errors
        log.info("hub unreachable for %s: %s", model, e)
        return None
    return str(info.sha), {s.rfilename for s in info.siblings or []}


def _download(model: str, commit: str, names: set[str]) -> Path:
    from huggingface_hub import snapshot_download

    try:
        snap = Path(snapshot_download(model, revision=commit, allow_patterns=_HUB_META))
        wanted = _hub_weight_files(snap, names)
        snapshot_download(model, revision=commit, allow_patterns=wanted)
    except Exception as e:  # network and hub errors come in many types
        raise BackendError(f"cannot download hub model {model!r} at {commit}: {e}") from e
    return snap


def _hub_weight_files(snap: Path, names: set[str]) -> list[str]:
    """The weight files transformers would take from a hub listing (indexes are in `snap`)."""
    picked = pick_weight_names(names, lambda index: index_shards(snap / index))
    if not picked:
        raise BackendError(f"hub snapshot {snap}: no model.safetensors or pytorch_model.bin")
    return picked


__all__ = [
    "ModelIdentity",
    "config_digest",
    "identity_of_dir",
    "identity_of_spec",
    "looks_local",
    "model_dir",
    "tokenizer_digest",
    "weight_files",
    "weights_digest",
]
