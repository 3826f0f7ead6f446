"""A shadow set on disk: N models, each trained on a recorded half of a candidate pool.

Layout of a shadow-set folder::

    shadow.json          the manifest: plan, one entry per model (its half, its identity)
    pool.jsonl           the candidate pool, one {"text": ...} per line, in pool order
    population.jsonl     texts no shadow model trains on (RMIA's population z), optional
    tokenizer/           the tokenizer every model shares (trained once, or the checkpoint's)
    models/model-007/    one transformers folder per trained model

The manifest fixes everything before any model is trained (pool and population digests, the
design seed, the training settings); a model's entry gets its identity (the content digest of
its weights and tokenizer, `harness.backends.identity`) when its training finishes, so a killed
run resumes at the first model without one. The set's digest covers the manifest without its
timestamps; an RFC 3161 timestamp over that digest proves the set existed at a time (needed
before shadow models may calibrate canaries: see `harness.mi.shadow_canary`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from canaries.corpus import CorpusError, read_corpus
from canaries.files import atomic_write_text
from harness.mi.design import DESIGN, unpack_mask

FORMAT = "tdp-shadow-set"
VERSION = 1
MANIFEST = "shadow.json"
POOL_FILE = "pool.jsonl"
POPULATION_FILE = "population.jsonl"


class ShadowError(ValueError):
    """A shadow set is missing, malformed, incomplete, or does not match its manifest."""


def texts_digest(texts: list[str] | tuple[str, ...]) -> str:
    """sha256 over the sha256 of each text, in order: names a pool without storing it."""
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8")).digest())
    return h.hexdigest()


@dataclass(frozen=True)
class ShadowPlan:
    """Everything fixed before the first model trains."""

    seed: str  # hex; draws the halves and the training seeds (recorded, not secret)
    pool_sha256: str
    pool_count: int
    population_sha256: str | None
    population_count: int
    train: dict[str, Any]  # TrainConfig fields
    tokenizer: str  # canonical tokenizer digest
    init_from: str | None = None  # checkpoint fine-tuned instead of training from scratch
    init_identity: str | None = None  # its identity digest, when it is a local folder
    vocab_size: int | None = None  # of the tokenizer trained for the set (None: the checkpoint's)
    design: str = DESIGN


@dataclass(frozen=True)
class ShadowModel:
    """One model of the set: which half it trains on and, once trained, what it is."""

    name: str
    index: int
    train_seed: int
    members: str  # packed boolean mask over the pool (design.pack_mask)
    n_members: int
    identity: str | None = None
    trained: dict[str, Any] | None = None  # TrainResult fields but the path

    @property
    def done(self) -> bool:
        return self.identity is not None


@dataclass(frozen=True)
class ShadowSet:
    """A loaded shadow set (texts included); `root` is the folder it came from."""

    root: Path
    created: str
    plan: ShadowPlan
    models: tuple[ShadowModel, ...]
    pool: tuple[str, ...]
    population: tuple[str, ...] = ()
    timestamps: tuple[dict[str, Any], ...] = field(default=())

    @property
    def trained(self) -> tuple[ShadowModel, ...]:
        return tuple(m for m in self.models if m.done)

    def keep(self, models: tuple[ShadowModel, ...] | None = None) -> np.ndarray:
        """keep[i, j]: the i-th of `models` (default: the trained ones) trained on pool text j."""
        chosen = self.trained if models is None else models
        n = self.plan.pool_count
        return np.array([unpack_mask(m.members, n) for m in chosen]).reshape(len(chosen), n)

    def model_dir(self, model: ShadowModel) -> Path:
        return self.root / "models" / model.name

    def digest(self) -> str:
        """sha256 of the canonical manifest without timestamps; only for a complete set."""
        missing = [m.name for m in self.models if not m.done]
        if missing:
            raise ShadowError(f"shadow set {self.root} is incomplete ({len(missing)} models not "
                              f"trained, first {missing[0]}); finish `tdp shadow train` first")
        return manifest_digest(manifest_dict(self))


def manifest_dict(s: ShadowSet) -> dict[str, Any]:
    """The manifest as written to shadow.json."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": s.created,
        "plan": asdict(s.plan),
        "models": [asdict(m) for m in s.models],
        "timestamps": list(s.timestamps),
    }


def manifest_digest(d: dict[str, Any]) -> str:
    body = {k: v for k, v in d.items() if k != "timestamps"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def save_manifest(s: ShadowSet) -> Path:
    """Write shadow.json atomically (a kill leaves the old manifest or the new one)."""
    text = json.dumps(manifest_dict(s), indent=1, sort_keys=True) + "\n"
    return atomic_write_text(s.root / MANIFEST, text, what="shadow manifest")


def write_texts(path: Path, texts: tuple[str, ...]) -> None:
    atomic_write_text(path, "".join(json.dumps({"text": t}) + "\n" for t in texts))


def _read_texts(path: Path, count: int, sha: str | None, what: str) -> tuple[str, ...]:
    if count == 0:
        return ()
    try:
        texts = tuple(read_corpus(path).texts)
    except CorpusError as e:
        raise ShadowError(f"shadow {what}: {e}") from None
    if len(texts) != count or texts_digest(texts) != sha:
        raise ShadowError(f"{path} is not the {what} the manifest names ({count} texts, "
                          f"sha256 {sha}); the folder was edited after training")
    return texts


def _plan(d: Any) -> ShadowPlan:
    if not isinstance(d, dict):
        raise ShadowError("manifest field 'plan' must be an object")
    try:
        plan = ShadowPlan(**d)
    except TypeError as e:
        raise ShadowError(f"malformed shadow plan: {e}") from None
    if plan.design != DESIGN:
        raise ShadowError(f"unknown shadow design {plan.design!r} (this harness knows {DESIGN!r})")
    return plan


def _models(rows: Any, plan: ShadowPlan) -> tuple[ShadowModel, ...]:
    if not isinstance(rows, list) or not rows:
        raise ShadowError("manifest field 'models' must be a non-empty list")
    out = []
    for i, row in enumerate(rows):
        try:
            m = ShadowModel(**row)
            unpack_mask(m.members, plan.pool_count)
        except (TypeError, ValueError) as e:
            raise ShadowError(f"malformed shadow model entry {i}: {e}") from None
        if m.index != i:
            raise ShadowError(f"shadow model entry {i} says index {m.index}")
        out.append(m)
    return tuple(out)


def load_shadow_set(root: str | Path) -> ShadowSet:
    """Read and check a shadow-set folder (manifest, pool and population digests)."""
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise ShadowError(f"shadow set not found: {root} is not a folder")
    if not path.is_file():
        raise ShadowError(f"{root} is not a shadow set (no {MANIFEST})")
    try:
        d = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShadowError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ShadowError(f"{path}: not a {FORMAT} manifest")
    if d.get("version") != VERSION:
        raise ShadowError(f"{path}: version {d.get('version')!r} (this harness reads {VERSION})")
    plan = _plan(d.get("plan"))
    models = _models(d.get("models"), plan)
    stamps = d.get("timestamps", [])
    if not isinstance(stamps, list) or not all(isinstance(t, dict) for t in stamps):
        raise ShadowError(f"{path}: 'timestamps' must be a list of objects")
    pool = _read_texts(root / POOL_FILE, plan.pool_count, plan.pool_sha256, "pool")
    pop = _read_texts(root / POPULATION_FILE, plan.population_count, plan.population_sha256,
                      "population")
    return ShadowSet(root, str(d.get("created", "")), plan, models, pool, pop, tuple(stamps))


def with_model(s: ShadowSet, model: ShadowModel) -> ShadowSet:
    """The set with one model entry replaced (by index)."""
    models = list(s.models)
    models[model.index] = model
    return replace(s, models=tuple(models))
