"""Reaching the Hugging Face hub: one quick probe before loading a hub id, so that a machine
without network fails in seconds with "no network" instead of a minute of retries.

huggingface_hub retries a failed request 5 times with exponential backoff (1, 2, 4, 8, 8 s;
`http_backoff` in huggingface_hub/utils/_http.py) and transformers asks for several files,
so an unreachable hub costs ~50 s and dozens of warning lines before the error. The probe
sends one HEAD request to the hub endpoint (``HF_ENDPOINT``) through huggingface_hub's own
HTTP client, so proxies and custom client factories apply, and bounds it with a deadline that
also covers name resolution. Unreachable hub: load from the local cache only, or fail.
"""

from __future__ import annotations

import threading
from pathlib import Path

from harness.backends.base import BackendError

#: seconds the probe may take, name resolution included
PROBE_TIMEOUT_S = 5.0
#: endpoint -> outcome of its probe in this process (the CLI probes before the backend does)
_PROBED: dict[str, str | None] = {}


def looks_local(name: str) -> bool:
    """A path rather than a hub id: starts like a path or names something that exists."""
    return name.startswith(("/", ".", "~")) or Path(name).expanduser().exists()


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks for no network at all."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def probe_hub(endpoint: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if the hub answers (any HTTP status) within `timeout` seconds, else why not."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    url = endpoint or constants.ENDPOINT
    if url in _PROBED:
        return _PROBED[url]
    outcome: list[str | None] = []

    def ask() -> None:
        try:
            get_session().head(url, timeout=timeout)
            outcome.append(None)
        except Exception as e:  # any transport failure means: not reachable
            outcome.append(" ".join(str(e).split()) or type(e).__name__)

    worker = threading.Thread(target=ask, name="tdp-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)  # getaddrinfo ignores socket timeouts; the join does not
    _PROBED[url] = outcome[0] if outcome else f"no answer from {url} within {timeout:g} s"
    return _PROBED[url]


def in_local_cache(repo_id: str, revision: str | None = None) -> bool:
    """True if the Hugging Face cache holds this repository's config.json (and so, likely, it)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
        if not isinstance(found, str):
            found = try_to_load_from_cache(repo_id, "tokenizer_config.json", revision=revision)
    except Exception:  # a malformed repo id: certainly not cached
        return False
    return isinstance(found, str)


def require_hub_or_cache(repo_id: str, what: str = "model", revision: str | None = None) -> bool:
    """Decide how to load a hub id: False = from the hub, True = from the local cache only.

    Raises BackendError saying "no network" at once when the hub is unreachable and the
    local cache does not hold `repo_id`. A local path never reaches the network: True.
    """
    if looks_local(repo_id) or hub_offline():
        return True
    why = probe_hub()
    if why is None:
        return False
    if in_local_cache(repo_id, revision):
        return True
    from huggingface_hub import constants

    raise BackendError(
        f"cannot load {what} {repo_id!r}: no network (the Hugging Face hub at "
        f"{constants.ENDPOINT} cannot be reached: {why}) and it is not in the local cache "
        f"{constants.HF_HUB_CACHE}; give a local folder, or fetch it where there is network"
    )


def preflight_model(spec_text: str) -> None:
    """Before any heavy import: parse a model spec and, for an hf hub id, check it can be had."""
    from harness.backends import BACKENDS
    from harness.backends.spec import parse_model_spec

    spec = parse_model_spec(spec_text, tuple(BACKENDS))
    if spec.backend == "hf":
        require_hub_or_cache(spec.model, "model", spec.revision)
