"""Canary-set files: generator spec, canaries, pre-registered plan, salt and commitment.

The commitment is sha256 of the canonical JSON of {spec, canaries, plan, salt}. Publish
it (or timestamp it) before the data goes out; any later edit of the file changes it.
The secret seed that drew the canaries lives in `FILE.secret` (mode 0600) and never
goes into the canary file or a report.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from canaries.drbg import HashDRBG
from canaries.generators import Canary, GeneratorError, GeneratorSpec, conforms, draw_canaries

FORMAT = "tdp-canary-set"
FORMAT_VERSION = 1
SEED_PURPOSE = "canaries"


class CanarySetError(ValueError):
    """A canary file is malformed, tampered with, or inconsistent with its spec."""


@dataclass(frozen=True)
class Plan:
    """The pre-registered analysis: fixed before publication, part of the commitment."""

    task: str = "canary-rank"
    score: str = "loss"
    statistic: str = "rank-sum"
    counterfactuals: int = 500
    alpha: float = 0.01
    score_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.counterfactuals < 1:
            raise CanarySetError(f"plan needs at least 1 counterfactual, got {self.counterfactuals}")
        if not 0 < self.alpha < 1:
            raise CanarySetError(f"plan alpha must be in (0, 1), got {self.alpha}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        try:
            return cls(**d)
        except TypeError as e:
            raise CanarySetError(f"malformed plan: {e}") from e


def canonical_json(obj: Any) -> bytes:
    """The byte string that is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class CanarySet:
    """A committed set of canaries drawn from `spec`, with the analysis plan."""

    spec: GeneratorSpec
    canaries: tuple[Canary, ...]
    plan: Plan
    salt: str
    created: str
    commitment: str = ""

    def committed_payload(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "canaries": [c.to_dict() for c in self.canaries],
            "plan": asdict(self.plan),
            "salt": self.salt,
        }

    def compute_commitment(self) -> str:
        return hashlib.sha256(canonical_json(self.committed_payload())).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": self.created,
            **self.committed_payload(),
            "commitment": self.commitment,
        }

    def texts(self) -> list[str]:
        return [c.text for c in self.canaries]


def new_canary_set(
    spec: GeneratorSpec, count: int, plan: Plan, seed: bytes | None = None
) -> tuple[CanarySet, bytes]:
    """Draw `count` canaries with fresh secret randomness; return the set and its seed."""
    if count < 1:
        raise CanarySetError(f"count must be >= 1, got {count}")
    seed = secrets.token_bytes(32) if seed is None else seed
    canaries = draw_canaries(spec, HashDRBG(seed, SEED_PURPOSE), count, id_prefix="canary-")
    draft = CanarySet(
        spec=spec,
        canaries=tuple(canaries),
        plan=plan,
        salt=secrets.token_hex(32),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    cs = CanarySet(**{**draft.__dict__, "commitment": draft.compute_commitment()})
    return cs, seed


def save_canary_set(cs: CanarySet, path: str | Path, seed: bytes | None = None) -> Path:
    """Write the canary file, and its seed to `path.secret` with mode 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cs.to_dict(), indent=1, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)
    if seed is not None:
        secret = secret_path(path)
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"seed": seed.hex(), "purpose": SEED_PURPOSE, "commitment": cs.commitment}, f)
        os.chmod(secret, 0o600)
    return path


def secret_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".secret")


def canary_set_from_dict(d: dict[str, Any]) -> CanarySet:
    """Parse and fully check a canary-set document (format, commitment, conformity)."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CanarySetError("not a tdp canary-set file (missing 'format': 'tdp-canary-set')")
    if d.get("format_version") != FORMAT_VERSION:
        raise CanarySetError(
            f"canary-set format_version {d.get('format_version')!r} is not supported "
            f"(this harness reads version {FORMAT_VERSION})"
        )
    try:
        cs = CanarySet(
            spec=GeneratorSpec.from_dict(d["spec"]),
            canaries=tuple(Canary.from_dict(c) for c in d["canaries"]),
            plan=Plan.from_dict(d["plan"]),
            salt=d["salt"],
            created=d["created"],
            commitment=d["commitment"],
        )
    except (KeyError, TypeError, GeneratorError) as e:
        raise CanarySetError(f"malformed canary-set file: {e}") from e
    recomputed = cs.compute_commitment()
    if recomputed != cs.commitment:
        raise CanarySetError(
            "canary-set commitment mismatch: the file was edited after it was committed "
            f"(stored {cs.commitment[:16]}..., recomputed {recomputed[:16]}...)"
        )
    texts = cs.texts()
    if len(set(texts)) != len(texts):
        raise CanarySetError("canary set holds duplicate canaries")
    for c in cs.canaries:
        why = conforms(cs.spec, c)
        if why:
            raise CanarySetError(why)
    return cs


def load_canary_set(path: str | Path) -> CanarySet:
    """Read a canary file and check it; every error names the file and the problem."""
    path = Path(path)
    try:
        d = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise CanarySetError(f"canary file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CanarySetError(f"{path}: not valid JSON ({e})") from e
    try:
        return canary_set_from_dict(d)
    except CanarySetError as e:
        raise CanarySetError(f"{path}: {e}") from e


def check_secret(cs: CanarySet, path: str | Path) -> str:
    """Redraw the canaries from `path.secret` and confirm they are the committed ones."""
    secret = secret_path(path)
    if not secret.exists():
        return f"no secret file ({secret.name}); the draw itself was not re-checked"
    info = json.loads(secret.read_text())
    seed = bytes.fromhex(info["seed"])
    redrawn = draw_canaries(cs.spec, HashDRBG(seed, SEED_PURPOSE), len(cs.canaries), id_prefix="canary-")
    if [c.text for c in redrawn] != cs.texts():
        raise CanarySetError(f"{path}: the canaries are not the ones the secret seed draws")
    return "the secret seed redraws exactly these canaries"
