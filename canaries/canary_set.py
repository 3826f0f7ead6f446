"""Canary-set files: generator spec, pre-registered plan, commitment, and the canaries.

Two formats. **v2** (protocol v2, the default of `tdp canaries new`): the commitment is
sha256 of the canonical JSON of {protocol, spec, plan (with the reference model's identity
when the score uses one), K, pool size, sha256 of the secret seed, the pinned beacon round,
creation time, salt}. No item exists yet: after the commitment is timestamped, the pinned
public beacon round is published and the pool (K canaries + the counterfactuals) is derived
from the secret seed and the round's randomness (harness/protocol/pool.py), so nobody could
choose or predict any item. Timestamps and the assignment are stored beside the commitment.
**v1** (legacy, still loaded, audited and verified): sha256 of {spec, canaries, plan, salt};
counterfactuals are drawn at audit time. The secret seed lives in `FILE.secret` (mode 0600)
and never goes into the canary file or a report.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import warnings
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from canaries.drbg import HashDRBG
from canaries.files import atomic_write_text, check_new_output, clean_leftovers
from canaries.generators import Canary, GeneratorError, GeneratorSpec, conforms, draw_canaries

FORMAT = "tdp-canary-set"
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
SEED_PURPOSE = "canaries"
PROTOCOL_V2 = "tdp-pool-v2"
SEED_DIGEST_LABEL = "tdp-pool-seed-v2"
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
    #: v2: {"spec": model spec, "identity": ModelIdentity digest} of the committed reference
    reference: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.counterfactuals < 1:
            raise CanarySetError(f"plan needs at least 1 counterfactual, got {self.counterfactuals}")
        if not 0 < self.alpha < 1:
            raise CanarySetError(f"plan alpha must be in (0, 1), got {self.alpha}")

    def to_dict(self) -> dict[str, Any]:
        """The plan as committed; v1 plans never had `reference`, so None is left out."""
        d = asdict(self)
        if d["reference"] is None:
            del d["reference"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        try:
            plan = cls(**d)
        except TypeError as e:
            raise CanarySetError(f"malformed plan: {e}") from e
        ref = plan.reference
        if ref is not None and (
            not isinstance(ref, dict) or set(ref) != {"spec", "identity"}
            or not all(isinstance(v, str) for v in ref.values())
        ):
            raise CanarySetError("malformed plan: reference must be {'spec': str, 'identity': str}")
        return plan


def canonical_json(obj: Any) -> bytes:
    """The byte string that is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class CanarySet:
    """A committed canary set: v1 (canaries committed directly) or v2 (a committed pool)."""

    spec: GeneratorSpec
    canaries: tuple[Canary, ...]
    plan: Plan
    salt: str
    created: str
    commitment: str = ""
    version: int = 1
    # --- v2 only: the committed pool, then what happened to it (outside the commitment) ----
    k: int = 0  # canaries the beacon round will derive
    pool_size: int = 0  # K + counterfactual items
    seed_digest: str = ""  # sha256(SEED_DIGEST_LABEL | secret seed)
    beacon: dict[str, Any] = field(default_factory=dict)  # {"chain": {...}, "round": int}
    timestamps: tuple[dict[str, Any], ...] = ()  # TimestampRecord dicts
    assignment: dict[str, Any] | None = None  # {"round": BeaconRound dict, "assigned": time}
    counterfactuals: tuple[Canary, ...] = ()  # the pool's other M items, in draw order

    @property
    def assigned(self) -> bool:
        """True once the canaries exist (always for v1; after `tdp canaries assign` for v2)."""
        return self.version == 1 or self.assignment is not None

    def committed_payload(self) -> dict[str, Any]:
        if self.version == 1:
            return {
                "spec": self.spec.to_dict(),
                "canaries": [c.to_dict() for c in self.canaries],
                "plan": self.plan.to_dict(),
                "salt": self.salt,
            }
        return {
            "protocol": PROTOCOL_V2,
            "spec": self.spec.to_dict(),
            "plan": self.plan.to_dict(),
            "canaries": self.k,
            "pool_size": self.pool_size,
            "seed_digest": self.seed_digest,
            "beacon": self.beacon,
            "created": self.created,
            "salt": self.salt,
        }

    def compute_commitment(self) -> str:
        return hashlib.sha256(canonical_json(self.committed_payload())).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        if self.version == 1:
            return {
                "format": FORMAT,
                "format_version": 1,
                "created": self.created,
                **self.committed_payload(),
                "commitment": self.commitment,
            }
        return {
            "format": FORMAT,
            "format_version": 2,
            "committed": self.committed_payload(),
            "commitment": self.commitment,
            "timestamps": list(self.timestamps),
            "assignment": self.assignment,
            "canaries": [c.to_dict() for c in self.canaries],
            "counterfactuals": [c.to_dict() for c in self.counterfactuals],
        }

    def texts(self) -> list[str]:
        return [c.text for c in self.canaries]

    def require_assigned(self) -> None:
        """Refuse to plant or audit a v2 set whose canaries the beacon has not derived yet."""
        if not self.assigned:
            rnd = self.beacon.get("round")
            raise CanarySetError(
                f"this v2 canary set has no canaries yet: they are derived from beacon round {rnd}"
                " once it is published (`tdp canaries assign`)"
            )


def seed_digest(seed: bytes) -> str:
    """sha256 of the secret seed under its own label: commits to the seed, reveals nothing."""
    from canaries.drbg import derive_seed

    return derive_seed(SEED_DIGEST_LABEL, seed).hex()


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
    return replace(draft, commitment=draft.compute_commitment()), seed


def new_pool_set(
    spec: GeneratorSpec,
    k: int,
    pool_size: int,
    plan: Plan,
    beacon: dict[str, Any],
    seed: bytes | None = None,
    created: str | None = None,
) -> tuple[CanarySet, bytes]:
    """Commit to a v2 pool of `pool_size` items (the first K become canaries), derived later
    from the secret seed and the pinned beacon round (`beacon` = {"chain": {...}, "round": r})."""
    if k < 1:
        raise CanarySetError(f"count must be >= 1, got {k}")
    if pool_size <= k:
        raise CanarySetError(f"the pool needs counterfactuals beyond the K={k} canaries")
    seed = secrets.token_bytes(32) if seed is None else seed
    draft = CanarySet(
        spec=spec,
        canaries=(),
        plan=plan,
        salt=secrets.token_hex(32),
        created=created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        version=2,
        k=k,
        pool_size=pool_size,
        seed_digest=seed_digest(seed),
        beacon=beacon,
    )
    return replace(draft, commitment=draft.compute_commitment()), seed


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
    version = d.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise CanarySetError(
            f"canary-set format_version {version!r} is not supported "
            f"(this harness reads versions {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    try:
        cs = _v1_from_dict(d) if version == 1 else _v2_from_dict(d)
    except (KeyError, TypeError, ValueError, AttributeError, GeneratorError) as e:
        if isinstance(e, CanarySetError):
            raise
        raise CanarySetError(f"malformed canary-set file: {type(e).__name__} {e}") from e
    recomputed = cs.compute_commitment()
    if recomputed != cs.commitment:
        raise CanarySetError(
            "canary-set commitment mismatch: the file was edited after it was committed "
            f"(stored {cs.commitment}, recomputed {recomputed})"
        )
    _check_items(cs)
    return cs


def _v1_from_dict(d: dict[str, Any]) -> CanarySet:
    return CanarySet(
        spec=GeneratorSpec.from_dict(d["spec"]),
        canaries=tuple(Canary.from_dict(c) for c in d["canaries"]),
        plan=Plan.from_dict(d["plan"]),
        salt=_str(d["salt"], "salt"),
        created=_str(d["created"], "created"),
        commitment=_str(d["commitment"], "commitment"),
    )


def _v2_from_dict(d: dict[str, Any]) -> CanarySet:
    c = d["committed"]
    if not isinstance(c, dict) or c.get("protocol") != PROTOCOL_V2:
        raise CanarySetError(f"v2 canary file without the {PROTOCOL_V2!r} commitment payload")
    unknown = set(c) - {"protocol", "spec", "plan", "canaries", "pool_size", "seed_digest",
                        "beacon", "created", "salt"}
    if unknown:
        raise CanarySetError(f"unknown committed fields {sorted(unknown)}")
    beacon = c["beacon"]
    if not isinstance(beacon, dict) or not isinstance(beacon.get("round"), int):
        raise CanarySetError("committed beacon must be {'chain': {...}, 'round': int}")
    assignment = d.get("assignment")
    if assignment is not None and not isinstance(assignment, dict):
        raise CanarySetError("assignment must be an object or null")
    stamps = d.get("timestamps", [])
    if not isinstance(stamps, list) or not all(isinstance(t, dict) for t in stamps):
        raise CanarySetError("timestamps must be a list of timestamp records")
    return CanarySet(
        spec=GeneratorSpec.from_dict(c["spec"]),
        canaries=tuple(Canary.from_dict(x) for x in d.get("canaries", [])),
        plan=Plan.from_dict(c["plan"]),
        salt=_str(c["salt"], "salt"),
        created=_str(c["created"], "created"),
        commitment=_str(d["commitment"], "commitment"),
        version=2,
        k=_int(c["canaries"], "canaries"),
        pool_size=_int(c["pool_size"], "pool_size"),
        seed_digest=_str(c["seed_digest"], "seed_digest"),
        beacon=beacon,
        timestamps=tuple(stamps),
        assignment=assignment,
        counterfactuals=tuple(Canary.from_dict(x) for x in d.get("counterfactuals", [])),
    )


def _str(v: Any, name: str) -> str:
    if not isinstance(v, str):
        raise CanarySetError(f"field {name!r} must be a string, got {type(v).__name__}")
    return v


def _int(v: Any, name: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise CanarySetError(f"field {name!r} must be a positive integer, got {v!r}")
    return v


def _check_items(cs: CanarySet) -> None:
    """Counts, distinctness and conformity of the items the file holds."""
    if cs.version == 2:
        if cs.assignment is None and (cs.canaries or cs.counterfactuals):
            raise CanarySetError("v2 canary file lists items but no beacon assignment")
        if cs.assignment is not None and (
            len(cs.canaries) != cs.k or len(cs.canaries) + len(cs.counterfactuals) != cs.pool_size
        ):
            raise CanarySetError(
                f"v2 canary file holds {len(cs.canaries)} canaries and {len(cs.counterfactuals)} "
                f"counterfactuals; the commitment says {cs.k} of a pool of {cs.pool_size}"
            )
    texts = cs.texts() + [c.text for c in cs.counterfactuals]
    if len(set(texts)) != len(texts):
        raise CanarySetError("canary set holds duplicate items")
    for c in (*cs.canaries, *cs.counterfactuals):
        why = conforms(cs.spec, c)
        if why:
            raise CanarySetError(why)


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
    """Check the seed in `path.secret`: v1 redraws the canaries, v2 matches the seed digest."""
    secret = secret_path(path)
    if not secret.exists():
        return f"no secret file ({secret.name}); the draw itself was not re-checked"
    seed = read_secret(secret)
    if cs.version == 2:
        if seed_digest(seed) != cs.seed_digest:
            raise CanarySetError(f"{path}: the secret seed does not match the committed seed digest")
        return "the secret seed matches the committed seed digest"
    drbg = HashDRBG(seed, SEED_PURPOSE)
    redrawn = draw_canaries(cs.spec, drbg, len(cs.canaries), id_prefix="canary-")
    if [c.text for c in redrawn] != cs.texts():
        raise CanarySetError(f"{path}: the canaries are not the ones the secret seed draws")
    return "the secret seed redraws exactly these canaries"
