"""Model spec strings in the lm-eval spirit: `hf:path/or/id@revision,dtype=bfloat16,batch_size=64`.

The model part is whatever the backend understands: a local path or hub id (`hf`, `vllm`), or
a URL for `openai` (`openai:http://127.0.0.1:8000/v1/org/model,concurrency=8`, split by the
backend into base URL and served name). Options never carry secrets (API keys come from env).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ModelSpecError(ValueError):
    """A model spec string cannot be parsed."""


@dataclass(frozen=True)
class ModelSpec:
    backend: str
    model: str
    revision: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        s = f"{self.backend}:{self.model}"
        if self.revision:
            s += f"@{self.revision}"
        for k, v in self.options.items():
            s += f",{k}={v}"
        return s


def _coerce(value: str) -> Any:
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def parse_model_spec(text: str, known_backends: tuple[str, ...] = ("hf",)) -> ModelSpec:
    """Parse `[backend:]model[@revision][,key=value...]`; backend defaults to `hf`."""
    text = text.strip()
    if not text:
        raise ModelSpecError("empty model spec")
    backend = "hf"
    head, _, rest = text.partition(":")
    if rest and head in known_backends:
        backend, text = head, rest
    elif rest and "/" not in head and "." not in head and not head.startswith("~"):
        raise ModelSpecError(
            f"unknown backend {head!r} in model spec; known backends: {', '.join(known_backends)}"
        )
    parts = text.split(",")
    model, options = parts[0], {}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ModelSpecError(f"model spec option {part!r} is not key=value")
        options[key.strip()] = _coerce(value.strip())
    revision = None
    if "@" in model:
        name, _, rev = model.rpartition("@")
        if name and rev and "/" not in rev:
            model, revision = name, rev
    if not model:
        raise ModelSpecError(f"model spec {text!r} names no model")
    return ModelSpec(backend=backend, model=model, revision=revision, options=options)
