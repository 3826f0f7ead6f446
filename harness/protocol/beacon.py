"""Public randomness beacons for protocol v2: drand chains, their rounds, offline verification.

A canary set's commitment pins a chain (by hash) and a future round; once that round is published
its randomness picks the canaries. `verify_round` checks a round offline: that it belongs to the
chain, that randomness = sha256(signature), and the BLS signature against the chain's public key.
`round_time` is when a round is published: genesis + (round - 1) * period (drand/drand
common/time.go, TimeOfRound: "genesis time is for 1st round already"). `LocalTestBeacon` signs
rounds with a key of its own for tests and the offline demo; its chain says `public=False`.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from harness.protocol import bls


class BeaconError(ValueError):
    """A chain, a round or a beacon argument is wrong; the message names what."""


SCHEME_UNCHAINED_G1 = "bls-unchained-g1-rfc9380"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
QUICKNET_HASH = "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971"
DEFAULT_HASH = "8990e7a9aaed2ffed73dbd7092123d6f289930540d7651336225dc172e51b2ce"
#: only these chains may be marked public (each is also checked against its parameters)
_PUBLIC_HASHES = frozenset({QUICKNET_HASH, DEFAULT_HASH})
SCHEME_CHAINED = "pedersen-bls-chained"


@dataclass(frozen=True)
class _Layout:
    key_bytes: int
    sig_bytes: int
    chained: bool
    verify: Callable[[bytes, bytes, bytes], bool]


# key and signature groups per scheme: drand/drand crypto/schemes.go (NewPedersenBLSChained,
# NewPedersenBLSUnchainedG1); message = sha256([previous_signature ||] round as uint64 big-endian)
_LAYOUTS = {
    SCHEME_UNCHAINED_G1: _Layout(bls.G2_BYTES, bls.G1_BYTES, False, bls.verify_sig_on_g1),
    SCHEME_CHAINED: _Layout(bls.G1_BYTES, bls.G2_BYTES, True, bls.verify_sig_on_g2),
}


def _hex(value: Any, what: str, n_bytes: int | None = None) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", value):
        raise BeaconError(f"{what} must be a non-empty even-length hex string, got {value!r:.80}")
    data = bytes.fromhex(value)
    if n_bytes is not None and len(data) != n_bytes:
        raise BeaconError(f"{what} must be {n_bytes} bytes ({2 * n_bytes} hex digits), "
                          f"got {len(data)}")
    return data


def _int(value: Any, what: str, minimum: int, maximum: int = 2**62) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        bound = f" and <= {maximum}" if isinstance(value, int) and value > maximum else ""
        raise BeaconError(f"{what} must be an integer >= {minimum}{bound}, got {value!r}")
    return value


def compute_chain_hash(
    period_s: int, genesis_time: int, public_key: str, genesis_seed: str, name: str
) -> str:
    """drand's chain hash: sha256(period u32 || genesis i64 || key || seed [|| beacon ID]).

    drand/drand common/chain/info.go, Info.Hash; the ID "default" is left out there.
    """
    data = struct.pack(">Iq", period_s, genesis_time) + bytes.fromhex(public_key)
    data += bytes.fromhex(genesis_seed)
    if name not in ("", "default"):
        data += name.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class BeaconChain:
    """One randomness chain: all a verifier needs to check its rounds offline.

    `name` is drand's beacon ID (part of the chain hash); `public_key` is the compressed group key
    in hex (G2, 96 bytes, for quicknet; G1, 48 bytes, for default); `genesis_seed` is drand's
    "genesis_seed"/"groupHash". The chain hash is recomputed from these and must match.
    """

    name: str
    chain_hash: str
    public_key: str
    scheme: str
    genesis_time: int
    period_s: int
    genesis_seed: str
    public: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise BeaconError(f"chain name must be letters, digits, '.', '_' or '-', "
                              f"got {self.name!r}")
        if self.scheme not in _LAYOUTS:
            raise BeaconError(f"chain {self.name}: unsupported scheme {self.scheme!r} "
                              f"(supported: {', '.join(sorted(_LAYOUTS))})")
        _hex(self.chain_hash, f"chain {self.name}: chain_hash", 32)
        _hex(self.public_key, f"chain {self.name}: public_key", _LAYOUTS[self.scheme].key_bytes)
        _hex(self.genesis_seed, f"chain {self.name}: genesis_seed")
        for name in ("chain_hash", "public_key", "genesis_seed"):
            object.__setattr__(self, name, getattr(self, name).lower())
        _int(self.genesis_time, f"chain {self.name}: genesis_time", 0)
        _int(self.period_s, f"chain {self.name}: period_s", 1, 2**32 - 1)
        if not isinstance(self.public, bool):
            raise BeaconError(f"chain {self.name}: public must be true or false")
        if self.public and self.chain_hash not in _PUBLIC_HASHES:
            raise BeaconError(f"chain {self.name} says public, but it is not a known public "
                              f"chain (a local or test chain must say public: false)")
        want = compute_chain_hash(self.period_s, self.genesis_time, self.public_key,
                                  self.genesis_seed, self.name)
        if self.chain_hash != want:
            raise BeaconError(f"chain {self.name}: chain_hash {self.chain_hash} does not match "
                              f"its key, period, genesis and seed (they hash to {want})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BeaconChain:
        """Read a chain back; one claiming to be public must be a known public chain, exactly."""
        chain = _construct(cls, d, "beacon chain")
        known = _BY_HASH.get(chain.chain_hash)
        if known is not None and chain != known:
            raise BeaconError(f"chain {chain.chain_hash[:16]}… is drand {known.name}, but the "
                              f"record differs from it: {_diff(chain, known)}")
        return chain


def _construct(cls: type, d: Mapping[str, Any], what: str) -> Any:
    """`cls(**d)` with unknown or missing fields reported as a BeaconError."""
    if not isinstance(d, Mapping):
        raise BeaconError(f"{what} must be a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise BeaconError(f"{what}: unknown field(s) {', '.join(map(str, unknown))}")
    try:
        return cls(**d)
    except TypeError as e:  # a missing required field
        raise BeaconError(f"{what}: {e}") from None


def _diff(a: BeaconChain, b: BeaconChain) -> str:
    return ", ".join(f.name for f in fields(a) if getattr(a, f.name) != getattr(b, f.name))


def _chain(**kw: Any) -> BeaconChain:
    return BeaconChain(**kw)


#: the public chains. Parameters: drand/drand common/chain/info_test.go (TestJsonFromRelay,
#: quicknet's relay /info JSON) and drand/tlock networks/fixed/fixed_test.go ("default",
#: "quicknet"); both match https://api.drand.sh/<chain hash>/info as quoted there.
CHAINS: dict[str, BeaconChain] = {
    c.name: c
    for c in (
        _chain(
            name="quicknet",
            chain_hash=QUICKNET_HASH,
            public_key="83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b"
            "6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab"
            "4af5a6e9c76a4bc09e76eae8991ef5ece45a",
            scheme=SCHEME_UNCHAINED_G1,
            genesis_time=1692803367,
            period_s=3,
            genesis_seed="f477d5c89f21a17c863a7f937c6a6d15859414d2be09cd448d4279af331c5d3e",
        ),
        _chain(  # the League of Entropy's original 30 s chained chain, beacon ID "default"
            name="default",
            chain_hash=DEFAULT_HASH,
            public_key="868f005eb8e6e4ca0a47c8a77ceaa5309a47978a7c71bc5cce96366b5d7a569937c52"
            "9eeda66c7293784a9402801af31",
            scheme=SCHEME_CHAINED,
            genesis_time=1595431050,
            period_s=30,
            genesis_seed="176f93498eac9ca337150b46d21dd58673ea4e3581185f869672e59fa4cb390a",
        ),
    )
}
_BY_HASH = {c.chain_hash: c for c in CHAINS.values()}
ALIASES = {"mainnet": "default", "loe-default": "default", "loe-quicknet": "quicknet"}


def get_chain(name_or_hash: str) -> BeaconChain:
    """A public chain by name ("quicknet", "default"), alias ("mainnet") or full chain hash."""
    key = str(name_or_hash).strip().lower()
    chain = CHAINS.get(ALIASES.get(key, key)) or _BY_HASH.get(key)
    if chain is not None:
        return chain
    names = [*CHAINS, *ALIASES]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise BeaconError(f"unknown beacon chain {name_or_hash!r} (known: {', '.join(names)}){hint}")


def round_time(chain: BeaconChain, round: int) -> int:
    """Unix time (s) at which `round` is published: round 1 at genesis, one per period after."""
    _int(round, "round", 1)
    return chain.genesis_time + (round - 1) * chain.period_s


def first_round_after(chain: BeaconChain, unix_time: float) -> int:
    """The first round published strictly after `unix_time`."""
    if isinstance(unix_time, bool) or not isinstance(unix_time, (int, float)) or not math.isfinite(
        unix_time
    ):
        raise BeaconError(f"time must be a finite number of unix seconds, got {unix_time!r}")
    if unix_time < chain.genesis_time:
        return 1
    return math.floor((unix_time - chain.genesis_time) / chain.period_s) + 2


@dataclass(frozen=True)
class BeaconRound:
    """One published round (drand's /public/<round> JSON plus the chain it belongs to); hex is
    normalised to lower case. `previous_signature` is only for chained schemes."""

    chain_hash: str
    round: int
    randomness: str
    signature: str
    previous_signature: str | None = None

    def __post_init__(self) -> None:
        _int(self.round, "round", 1)
        for name in ("chain_hash", "randomness", "signature", "previous_signature"):
            value = getattr(self, name)
            if value is None and name == "previous_signature":
                continue
            _hex(value, f"round {self.round}: {name}")
            object.__setattr__(self, name, value.lower())

    @property
    def randomness_bytes(self) -> bytes:
        return bytes.fromhex(self.randomness)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["previous_signature"] is None:
            del d["previous_signature"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], chain_hash: str | None = None) -> BeaconRound:
        """Read a round; `chain_hash` fills in for drand's JSON, which does not carry it."""
        if chain_hash is not None and isinstance(d, Mapping):
            d = {"chain_hash": chain_hash, **d}
            if str(d["chain_hash"]).lower() != chain_hash.lower():
                raise BeaconError(f"beacon round says chain {d['chain_hash']}, not {chain_hash}")
        return _construct(cls, d, "beacon round")


def verify_round(chain: BeaconChain, r: BeaconRound) -> None:
    """Check `r` offline against `chain`; raise BeaconError naming the first thing wrong."""
    where = f"{chain.name} round {r.round}"
    if r.chain_hash != chain.chain_hash:
        raise BeaconError(f"round {r.round} is from chain {r.chain_hash[:16]}…, not from "
                          f"{chain.name} ({chain.chain_hash[:16]}…)")
    layout = _LAYOUTS[chain.scheme]
    signature = _hex(r.signature, f"{where}: signature", layout.sig_bytes)
    randomness = _hex(r.randomness, f"{where}: randomness", 32)
    if layout.chained:
        if r.previous_signature is None:
            raise BeaconError(f"{where}: the chain is chained ({chain.scheme}), so the round "
                              f"needs its previous_signature")
        previous = _previous_signature(chain, r, layout, where)
    elif r.previous_signature is not None:
        raise BeaconError(f"{where}: the chain is unchained ({chain.scheme}); a round of it "
                          f"has no previous_signature")
    else:
        previous = b""
    if hashlib.sha256(signature).digest() != randomness:
        raise BeaconError(f"{where}: randomness is not sha256(signature)")
    message = hashlib.sha256(previous + struct.pack(">Q", r.round)).digest()
    try:
        ok = layout.verify(bytes.fromhex(chain.public_key), message, signature)
    except bls.PointError as e:
        raise BeaconError(f"{where}: {e}") from None
    if not ok:
        raise BeaconError(f"{where}: BLS signature does not verify against the chain's public "
                          f"key (wrong round number, previous signature or chain?)")


def _previous_signature(chain: BeaconChain, r: BeaconRound, layout: _Layout, where: str) -> bytes:
    if r.round == 1:  # round 0 is drand's genesis beacon, whose "signature" is the seed
        if r.previous_signature != chain.genesis_seed:
            raise BeaconError(f"{where}: previous_signature of round 1 must be the genesis seed")
        return bytes.fromhex(chain.genesis_seed)
    return _hex(r.previous_signature, f"{where}: previous_signature", layout.sig_bytes)


def parse_beacon_arg(s: str) -> tuple[str, int | None]:
    """"drand:quicknet:12345" -> ("quicknet", 12345); "drand:quicknet" -> ("quicknet", None)."""
    parts = str(s).strip().split(":")
    if len(parts) not in (2, 3) or parts[0].lower() != "drand" or not parts[1]:
        raise BeaconError(f"beacon must look like drand:CHAIN[:ROUND] (e.g. drand:quicknet:12345),"
                          f" got {s!r}")
    if len(parts) == 2:
        return parts[1], None
    if not re.fullmatch(r"[0-9]+", parts[2]) or int(parts[2]) < 1:
        raise BeaconError(f"beacon round must be a positive integer, got {parts[2]!r} in {s!r}")
    return parts[1], int(parts[2])


__all__ = [
    "ALIASES", "BeaconChain", "BeaconError", "BeaconRound", "CHAINS",
    "SCHEME_CHAINED", "SCHEME_UNCHAINED_G1", "compute_chain_hash", "first_round_after",
    "get_chain", "parse_beacon_arg", "round_time", "verify_round",
]
