"""A local test beacon: quicknet's scheme with a key of its own, for tests and the offline demo.

Whoever holds its secret key can sign any round at any time, so it proves nothing about who chose
the canaries; its chain says `public=False` and reports must label it as not public. Round 1 is
published at `genesis_time` (by default the second it was created), then one round per period.
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canaries.files import atomic_write_text
from harness.protocol import bls
from harness.protocol.beacon import (
    ALIASES,
    CHAINS,
    SCHEME_UNCHAINED_G1,
    BeaconChain,
    BeaconError,
    BeaconRound,
    compute_chain_hash,
)

KEY_FORMAT = "tdp-local-test-beacon"
KEY_VERSION = 1


@dataclass(frozen=True)
class LocalTestBeacon:
    """A beacon whose BLS secret key we hold (never printed by repr)."""

    secret_key: int = field(repr=False)
    name: str = "local-test"
    genesis_time: int = 0
    period_s: int = 1

    def __post_init__(self) -> None:
        try:
            bls.check_secret_key(self.secret_key)
        except bls.PointError as e:
            raise BeaconError(f"local beacon {self.name}: {e}") from None
        self.chain  # noqa: B018  (validates name, genesis and period through BeaconChain)
        if self.name.lower() in CHAINS or self.name.lower() in ALIASES:
            raise BeaconError(f"local beacon name {self.name!r} is a public chain's name; "
                              f"pick another (e.g. local-test)")

    @classmethod
    def create(
        cls, name: str = "local-test", period_s: int = 1, genesis_time: int | None = None
    ) -> LocalTestBeacon:
        """A fresh key; genesis defaults to now (whole seconds), so round 1 is out at once."""
        start = int(time.time()) if genesis_time is None else genesis_time
        return cls(bls.new_secret_key(), name, start, period_s)

    @functools.cached_property
    def chain(self) -> BeaconChain:
        """The chain a verifier checks this beacon's rounds against (public key only)."""
        public_key = bls.public_key_on_g2(self.secret_key).hex()
        seed = hashlib.sha256(b"tdp local test beacon\0" + bytes.fromhex(public_key)).hexdigest()
        try:
            chain_hash = compute_chain_hash(
                self.period_s, self.genesis_time, public_key, seed, self.name
            )
        except (struct.error, TypeError, AttributeError):
            chain_hash = "0" * 64  # BeaconChain below names the bad field
        return BeaconChain(
            name=self.name,
            chain_hash=chain_hash,
            public_key=public_key,
            scheme=SCHEME_UNCHAINED_G1,
            genesis_time=self.genesis_time,
            period_s=self.period_s,
            genesis_seed=seed,
            public=False,
        )

    def sign(self, round: int) -> BeaconRound:
        """Round `round` of this beacon, signed as quicknet signs: sk * H1(sha256(round_be8))."""
        if isinstance(round, bool) or not isinstance(round, int) or round < 1:
            raise BeaconError(f"round must be an integer >= 1, got {round!r}")
        message = hashlib.sha256(struct.pack(">Q", round)).digest()
        signature = bls.sign_on_g1(self.secret_key, message)
        return BeaconRound(
            chain_hash=self.chain.chain_hash,
            round=round,
            randomness=hashlib.sha256(signature).hexdigest(),
            signature=signature.hex(),
        )

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write the secret key and chain parameters, mode 0600, atomically."""
        record = {
            "format": KEY_FORMAT,
            "version": KEY_VERSION,
            "name": self.name,
            "genesis_time": self.genesis_time,
            "period_s": self.period_s,
            "secret_key": f"{self.secret_key:064x}",
            "chain_hash": self.chain.chain_hash,
        }
        text = json.dumps(record, indent=1) + "\n"
        return atomic_write_text(path, text, mode=0o600, force=force, what="local beacon key")

    @classmethod
    def load(cls, path: str | Path) -> LocalTestBeacon:
        """Read a key file written by `save`; any problem is a BeaconError naming it."""
        path = Path(path)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BeaconError(f"local beacon key {path} not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BeaconError(f"local beacon key {path} is unreadable: {e}") from None
        return cls._from_record(record, path)

    @classmethod
    def _from_record(cls, record: Any, path: Path) -> LocalTestBeacon:
        if not isinstance(record, dict) or record.get("format") != KEY_FORMAT:
            raise BeaconError(f"{path} is not a {KEY_FORMAT} key file")
        if record.get("version") != KEY_VERSION:
            raise BeaconError(f"{path}: unsupported key file version {record.get('version')!r}")
        try:
            beacon = cls(
                secret_key=int(record["secret_key"], 16),
                name=record["name"],
                genesis_time=record["genesis_time"],
                period_s=record["period_s"],
            )
        except KeyError as e:
            raise BeaconError(f"{path}: missing field {e.args[0]}") from None
        except BeaconError as e:
            raise BeaconError(f"{path}: {e}") from None
        except (TypeError, ValueError) as e:
            raise BeaconError(f"{path}: bad field ({e})") from None
        if beacon.chain.chain_hash != record.get("chain_hash"):
            raise BeaconError(f"{path}: chain_hash does not match the key and parameters")
        return beacon
