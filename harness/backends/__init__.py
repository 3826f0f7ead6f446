"""Model backends behind one seam; loaded lazily by name from a model spec string."""

from __future__ import annotations

import difflib
import importlib

from harness.backends.base import Backend, BackendError, Fingerprint, VocabStats
from harness.backends.spec import ModelSpec, ModelSpecError, parse_model_spec

#: backend name -> "module:attr" of a class with `from_spec(ModelSpec)`; imported on first use
BACKENDS: dict[str, str] = {
    "hf": "harness.backends.hf:HFBackend",
    "vllm": "harness.backends.vllm:VLLMBackend",
    "openai": "harness.backends.openai_compat:OpenAIBackend",
}


def load_backend(spec: str | ModelSpec) -> Backend:
    """Build a backend from a spec string such as `hf:./model@main,dtype=float32`."""
    if isinstance(spec, str):
        spec = parse_model_spec(spec, tuple(BACKENDS))
    if spec.backend not in BACKENDS:
        close = difflib.get_close_matches(spec.backend, list(BACKENDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ModelSpecError(f"unknown backend {spec.backend!r}{hint}")
    module_name, _, attr = BACKENDS[spec.backend].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except ImportError as e:
        raise BackendError(
            f"backend {spec.backend!r} needs an optional dependency that is not installed ({e}); "
            f"try `pip install 'tdp-harness[{spec.backend}]'`"
        ) from e
    return cls.from_spec(spec)


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "Fingerprint",
    "ModelSpec",
    "ModelSpecError",
    "VocabStats",
    "load_backend",
    "parse_model_spec",
]
