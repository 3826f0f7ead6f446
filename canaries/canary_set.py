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
import stat
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from canaries.drbg import HashDRBG
from canaries.files import atomic_write_text, check_new_output, clean_leftovers
from canaries.generators import Canary, GeneratorError, GeneratorSpec, conforms, draw_canaries

FORMAT = "tdp-canary-set"
FORMAT_VERSION = 1
SEED_PURPOSE = "canaries"
SECRET_SEED_BYTES = 32
#: canary file and secret: only the owner may read them (the canaries are secret until the audit)
PRIVATE_MODE = 0o600


class CanarySetError(ValueError):
    """A canary file is malformed, tampered with, or inconsistent with its spec."""


class SecretModeWarning(UserWarning):
    """A secret-seed file may be read by other users."""


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


def save_canary_set(
    cs: CanarySet, path: str | Path, seed: bytes | None = None, force: bool = True
) -> Path:
    """Write the canary file and its seed (`path.secret`), both mode 0600, never through a link.

    The canary file holds the canaries themselves, so it is as private as the seed until the
    audit. With `force` False an existing canary file or secret (even an orphaned one) is
    refused. The secret is written first, so a canary file never stands without its secret.
    """
    path = Path(path)
    secret = secret_path(path)
    check_new_output(path, force, "canary file")
    if seed is not None or not force:  # an orphaned secret would pair with the new file
        check_new_output(secret, force, "secret file")
    clean_leftovers(path)  # temporaries of a killed save (secret's included: same prefix)
    if seed is not None:
        info = {"seed": seed.hex(), "purpose": SEED_PURPOSE, "commitment": cs.commitment}
        atomic_write_text(secret, json.dumps(info), PRIVATE_MODE, force, "secret file")
    text = json.dumps(cs.to_dict(), indent=1, ensure_ascii=False) + "\n"
    atomic_write_text(path, text, PRIVATE_MODE, force, "canary file")
    return path


def secret_path(path: str | Path) -> Path:
    """Where the secret seed of the canary file `path` lives: `path.secret`."""
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


def read_secret(path: str | Path) -> bytes:
    """The seed stored in a `.secret` file, checked; warns if others may read the file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            raw = f.read()
    except FileNotFoundError:
        raise CanarySetError(f"secret file not found: {path}") from None
    except OSError as e:
        raise CanarySetError(f"{path}: cannot read the secret file ({e.strerror})") from None
    if mode & 0o077:
        warnings.warn(
            f"{path} holds the secret seed but others may read it (mode {mode:04o}); "
            f"run: chmod 600 {path}",
            SecretModeWarning,
            stacklevel=2,
        )
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CanarySetError(f"{path}: the secret file is not valid JSON ({e})") from None
    if not isinstance(info, dict) or not isinstance(info.get("seed"), str):
        raise CanarySetError(f"{path}: the secret file has no 'seed' string")
    try:
        seed = bytes.fromhex(info["seed"])
    except ValueError:
        raise CanarySetError(f"{path}: the secret seed is not hexadecimal") from None
    if len(seed) != SECRET_SEED_BYTES:
        raise CanarySetError(
            f"{path}: the secret seed has {len(seed)} bytes, expected {SECRET_SEED_BYTES}"
        )
    return seed


def check_secret(cs: CanarySet, path: str | Path) -> str:
    """Redraw the canaries from `path.secret` and confirm they are the committed ones."""
    secret = secret_path(path)
    if not secret.exists():
        return f"no secret file ({secret.name}); the draw itself was not re-checked"
    seed = read_secret(secret)
    drbg = HashDRBG(seed, SEED_PURPOSE)
    redrawn = draw_canaries(cs.spec, drbg, len(cs.canaries), id_prefix="canary-")
    if [c.text for c in redrawn] != cs.texts():
        raise CanarySetError(f"{path}: the canaries are not the ones the secret seed draws")
    return "the secret seed redraws exactly these canaries"
