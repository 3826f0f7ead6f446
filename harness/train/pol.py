"""Proof-of-learning (PoL) logs: what a verifier needs to replay any stretch of training.

A log (after Jia et al., "Proof-of-Learning: Definitions and Practice", IEEE S&P 2021, and
their reference code cleverhans-lab/Proof-of-Learning) is a folder::

    log.json                          the record below (format "tdp-pol-log", version 1)
    data.safetensors                  tensor "blocks": int64 (n_blocks, block_size) token ids
    tokenizer/                        the tokenizer that made the blocks (transformers format)
    checkpoints/step-00000000.safetensors ... one per checkpoint

`log.json`:

- ``model``: ``{"kind": "gpt2", "config": {...}}``, the GPT2Config arguments (init is not
  replayed: checkpoint 0 holds the initial weights).
- ``loss``: ``"causal-lm-mean"`` (labels = inputs, mean over every predicted token).
- ``optimizer``: ``{"kind": "adamw", "betas", "eps", "weight_decay", "amsgrad"}``.
- ``schedule``: ``{"kind": "linear-warmup", "base_lr", "warmup_steps", "total_steps"}``
  (transformers' ``get_linear_schedule_with_warmup``); each step also records its ``lr``.
- ``batch_size``, ``checkpoint_every`` (k).
- ``data``: ``file``, ``sha256`` (content digest of the blocks), ``blocks``, ``block_size``,
  ``documents`` (token span ``[start, end)`` of each document in the packed stream, EOS
  between documents not included) and ``document_sha256`` (sha256 of each document's text).
- ``steps``: one ``{"lr": float, "batch": [block indices]}`` per optimiser step, in order.
- ``checkpoints``: ``{"step", "file", "sha256"}`` at steps 0, k, 2k, ... and the last step.
  A checkpoint holds ``param/<name>`` for every parameter (tied weights once) and
  ``opt/<name>/<key>`` for AdamW's state (``step``, ``exp_avg``, ``exp_avg_sq``); replaying
  from it needs nothing else. ``sha256`` is a content digest: sha256 over (name, dtype,
  shape, sha256 of the bytes) lines in name order, so it does not depend on file layout.
- ``tokenizer``: the tokenizer folder (to find a target text's tokens in the blocks).
- ``environment``: torch and transformers versions, device, torch threads (replay uses the
  same thread count: CPU kernels may sum in another order with another count).
- ``provenance``: ``{"kind": "trained"}``, or for a log written by the repudiation forger
  ``{"kind": "forged", ...}`` (the verifier ignores it; it never changes a verdict).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

FORMAT = "tdp-pol-log"
VERSION = 1
LOG_FILE = "log.json"
DATA_FILE = "data.safetensors"
CHECKPOINT_DIR = "checkpoints"
TOKENIZER_DIR = "tokenizer"


class PoLError(ValueError):
    """A proof-of-learning log is missing, malformed, or inconsistent with its files."""


@dataclass(frozen=True)
class PoLOptions:
    """Turn on PoL logging in `train_causal_lm`: where the log goes, how often to checkpoint."""

    directory: str | Path
    checkpoint_every: int = 10
    force: bool = False  # replace an existing log folder


@dataclass(frozen=True)
class StepRecord:
    """One optimiser step: the learning rate it used and the data blocks of its minibatch."""

    lr: float
    batch: tuple[int, ...]


@dataclass(frozen=True)
class CheckpointRecord:
    step: int
    file: str
    sha256: str


@dataclass(frozen=True)
class DataRecord:
    file: str
    sha256: str
    blocks: int
    block_size: int
    documents: tuple[tuple[int, int], ...] = ()
    document_sha256: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoLLog:
    """The parsed `log.json` of one log folder (`root` is where its files live)."""

    model: dict[str, Any]
    loss: str
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    batch_size: int
    checkpoint_every: int
    data: DataRecord
    steps: tuple[StepRecord, ...]
    checkpoints: tuple[CheckpointRecord, ...]
    tokenizer: str = TOKENIZER_DIR
    environment: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=lambda: {"kind": "trained"})
    root: Path = Path(".")

    def to_dict(self) -> dict[str, Any]:
        d = {"format": FORMAT, "version": VERSION, **asdict(self)}
        d.pop("root")
        d["steps"] = [{"lr": s.lr, "batch": list(s.batch)} for s in self.steps]
        return d

    def checkpoint_path(self, record: CheckpointRecord) -> Path:
        return self.root / record.file

    def with_root(self, root: Path) -> PoLLog:
        return replace(self, root=root)


def scheduled_lr(schedule: Mapping[str, Any], step: int) -> float:
    """The learning rate the declared schedule gives at `step` (same arithmetic as transformers)."""
    if schedule.get("kind") != "linear-warmup":
        raise PoLError(f"unknown learning-rate schedule {schedule.get('kind')!r}")
    warm, total = int(schedule["warmup_steps"]), int(schedule["total_steps"])
    if step < warm:
        factor = float(step) / float(max(1, warm))
    else:
        factor = max(0.0, float(total - step) / float(max(1, total - warm)))
    return float(schedule["base_lr"]) * factor


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """Content digest of named tensors: independent of file layout, sensitive to every bit."""
    h = hashlib.sha256(b"tdp-pol-tensors-v1\n")
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        body = hashlib.sha256(raw)
        line = json.dumps([name, str(t.dtype), list(t.shape), body.hexdigest()])
        h.update(line.encode() + b"\n")
    return h.hexdigest()


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> str:
    """Write tensors as safetensors; return their content digest."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    save_file(clean, str(path))
    return tensor_digest(clean)


def load_tensors(path: Path, expect_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file; refuse it when its content digest is not the recorded one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise PoLError(f"{path}: file listed in the log is missing")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise PoLError(f"{path}: unreadable ({e})") from e
    if expect_sha256 is not None and tensor_digest(tensors) != expect_sha256:
        raise PoLError(f"{path}: content digest differs from the one in the log")
    return tensors


def checkpoint_file(step: int) -> str:
    return f"{CHECKPOINT_DIR}/step-{step:08d}.safetensors"


def checkpoint_steps(total: int, every: int) -> list[int]:
    """Steps at which a log holds a checkpoint: 0, k, 2k, ... and always the last."""
    steps = list(range(0, total, every))
    return [*steps, total] if steps[-1] != total else steps


def document_spans(lengths: Sequence[int]) -> list[tuple[int, int]]:
    """Token spans of documents packed with one EOS after each (see `pack_blocks`)."""
    spans, pos = [], 0
    for n in lengths:
        spans.append((pos, pos + n))
        pos += n + 1
    return spans


def log_json(log: PoLLog) -> str:
    """`log.json`'s text: one line per step and per checkpoint, so a diff shows what changed."""
    d = log.to_dict()
    lines = []
    for key, value in d.items():
        if key in ("steps", "checkpoints") and value:
            rows = ",\n  ".join(json.dumps(v) for v in value)
            lines.append(f" {json.dumps(key)}: [\n  {rows}\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_log(log: PoLLog, directory: Path) -> Path:
    """Write `log.json` into `directory` (the data and checkpoint files are already there)."""
    path = directory / LOG_FILE
    path.write_text(log_json(log), "utf-8")
    return path


def _parse(d: dict[str, Any], root: Path) -> PoLLog:
    if d.get("format") != FORMAT:
        raise PoLError(f"{root}: not a PoL log (format {d.get('format')!r}, want {FORMAT!r})")
    if d.get("version") != VERSION:
        raise PoLError(f"{root}: PoL log version {d.get('version')!r} unsupported (want {VERSION})")
    data = dict(d["data"])
    data["documents"] = tuple(tuple(s) for s in data.get("documents", ()))
    data["document_sha256"] = tuple(data.get("document_sha256", ()))
    steps = tuple(StepRecord(float(s["lr"]), tuple(int(i) for i in s["batch"])) for s in d["steps"])
    return PoLLog(
        model=d["model"],
        loss=d["loss"],
        optimizer=d["optimizer"],
        schedule=d["schedule"],
        batch_size=int(d["batch_size"]),
        checkpoint_every=int(d["checkpoint_every"]),
        data=DataRecord(**data),
        steps=steps,
        checkpoints=tuple(CheckpointRecord(**c) for c in d["checkpoints"]),
        tokenizer=d.get("tokenizer", TOKENIZER_DIR),
        environment=d.get("environment", {}),
        provenance=d.get("provenance", {"kind": "trained"}),
        root=root,
    )


def load_log(directory: str | Path) -> PoLLog:
    """Read a log folder's `log.json` (a path to the file itself is accepted too)."""
    root = Path(directory)
    path = root / LOG_FILE if root.is_dir() else root
    root = path.parent
    if not path.is_file():
        raise PoLError(f"no PoL log at {directory} (expected {LOG_FILE})")
    try:
        return _parse(json.loads(path.read_text("utf-8")), root)
    except json.JSONDecodeError as e:
        raise PoLError(f"{path}: not valid JSON ({e})") from e
    except KeyError as e:
        raise PoLError(f"{path}: malformed PoL log (no field {e})") from e
    except (TypeError, ValueError) as e:
        if isinstance(e, PoLError):
            raise
        raise PoLError(f"{path}: malformed PoL log ({type(e).__name__}: {e})") from e


def load_blocks(log: PoLLog) -> torch.Tensor:
    """The training data blocks, checked against the digest in the log."""
    blocks = load_tensors(log.root / log.data.file, log.data.sha256)
    if "blocks" not in blocks:
        raise PoLError(f"{log.root / log.data.file}: no tensor named 'blocks'")
    return blocks["blocks"]
