"""Beacon library: real drand rounds verify offline, every tampering fails with a named error,
round times follow drand's rule, and the local test beacon round-trips but is no public chain.

Pairings are pure Python (~0.3 s of CPU each), so each check that needs one is run once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pytest

from canaries.files import OutputError
from harness.protocol.beacon import (
    CHAINS,
    BeaconChain,
    BeaconError,
    BeaconRound,
    compute_chain_hash,
    first_round_after,
    get_chain,
    parse_beacon_arg,
    round_time,
    verify_round,
)
from harness.protocol.local_beacon import LocalTestBeacon

FIXTURES = Path(__file__).parent / "fixtures" / "drand_rounds.json"
QUICKNET, DEFAULT = get_chain("quicknet"), get_chain("default")


def _load_rounds() -> list[tuple[BeaconChain, BeaconRound]]:
    out = []
    for item in json.loads(FIXTURES.read_text())["rounds"]:
        chain = get_chain(item["chain"])
        fields = {k: item[k] for k in ("round", "randomness", "signature", "previous_signature")
                  if k in item}
        out.append((chain, BeaconRound.from_dict(fields, chain_hash=chain.chain_hash)))
    return out


REAL = _load_rounds()


def _first(chain: BeaconChain) -> BeaconRound:
    return next(r for c, r in REAL if c is chain)


def _flip(hex_str: str, at: int) -> str:
    data = bytearray(bytes.fromhex(hex_str))
    data[at] ^= 0x01
    return data.hex()


def _resigned(r: BeaconRound, signature: str) -> BeaconRound:
    """`r` with another signature and the randomness that matches it (to reach the BLS check)."""
    rand = hashlib.sha256(bytes.fromhex(signature)).hexdigest()
    return dataclasses.replace(r, signature=signature, randomness=rand)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> LocalTestBeacon:
    return LocalTestBeacon.create(period_s=2, genesis_time=1_700_000_000)


# --- real rounds ----------------------------------------------------------------------------


def test_fixtures_cover_both_schemes() -> None:
    assert {c.name for c, _ in REAL} == {"quicknet", "default"}
    assert all((r.previous_signature is None) == (c is QUICKNET) for c, r in REAL)


@pytest.mark.parametrize("chain,r", REAL, ids=[f"{c.name}-{r.round}" for c, r in REAL])
def test_real_round_verifies(chain: BeaconChain, r: BeaconRound) -> None:
    verify_round(chain, r)


@pytest.mark.parametrize("chain", [QUICKNET, DEFAULT], ids=["quicknet", "default"])
def test_flipped_signature_byte_fails_bls(chain: BeaconChain) -> None:
    r = _first(chain)
    with pytest.raises(BeaconError, match=rf"{chain.name} round {r.round}: .*signature"):
        verify_round(chain, _resigned(r, _flip(r.signature, 20)))


def test_flipped_signature_alone_breaks_randomness() -> None:
    r = _first(QUICKNET)
    bad = dataclasses.replace(r, signature=_flip(r.signature, 20))
    with pytest.raises(BeaconError, match=r"randomness is not sha256\(signature\)"):
        verify_round(QUICKNET, bad)


def test_flipped_randomness_fails() -> None:
    r = _first(DEFAULT)
    with pytest.raises(BeaconError, match=r"randomness is not sha256\(signature\)"):
        verify_round(DEFAULT, dataclasses.replace(r, randomness=_flip(r.randomness, 0)))


def test_flipped_previous_signature_fails() -> None:
    r = _first(DEFAULT)
    bad = dataclasses.replace(r, previous_signature=_flip(r.previous_signature, 50))
    with pytest.raises(BeaconError, match="does not verify against the chain's public key"):
        verify_round(DEFAULT, bad)


@pytest.mark.parametrize("chain", [QUICKNET, DEFAULT], ids=["quicknet", "default"])
def test_wrong_round_number_fails(chain: BeaconChain) -> None:
    r = _first(chain)
    with pytest.raises(BeaconError, match=f"round {r.round + 1}: BLS signature does not verify"):
        verify_round(chain, dataclasses.replace(r, round=r.round + 1))


def test_another_chains_key_fails(local: LocalTestBeacon) -> None:
    r = _first(QUICKNET)
    with pytest.raises(BeaconError, match="is from chain 52db9ba70e0cc0f6…, not from local-test"):
        verify_round(local.chain, r)
    relabelled = dataclasses.replace(r, chain_hash=local.chain.chain_hash)
    with pytest.raises(BeaconError, match="does not verify against the chain's public key"):
        verify_round(local.chain, relabelled)
    as_default = dataclasses.replace(r, chain_hash=DEFAULT.chain_hash)
    with pytest.raises(BeaconError, match="signature must be 96 bytes"):
        verify_round(DEFAULT, as_default)


def test_chained_round_needs_previous_signature_and_unchained_refuses_one() -> None:
    r = _first(DEFAULT)
    with pytest.raises(BeaconError, match="chained .* needs its previous_signature"):
        verify_round(DEFAULT, dataclasses.replace(r, previous_signature=None))
    q = _first(QUICKNET)
    with pytest.raises(BeaconError, match="unchained .* has no previous_signature"):
        verify_round(QUICKNET, dataclasses.replace(q, previous_signature=r.previous_signature))
    with pytest.raises(BeaconError, match="round 1 must be the genesis seed"):
        verify_round(DEFAULT, dataclasses.replace(r, round=1))


def test_malformed_rounds_are_named() -> None:
    q = _first(QUICKNET)
    with pytest.raises(BeaconError, match="signature must be a non-empty even-length hex"):
        dataclasses.replace(q, signature="zz" + q.signature[2:])
    with pytest.raises(BeaconError, match="randomness must be a non-empty even-length hex"):
        dataclasses.replace(q, randomness=q.randomness[:-1])
    for bad_round in (0, -3, True, "12"):
        with pytest.raises(BeaconError, match="round must be an integer >= 1"):
            dataclasses.replace(q, round=bad_round)
    with pytest.raises(BeaconError, match="signature must be 48 bytes"):
        verify_round(QUICKNET, _resigned(q, q.signature[:-2]))
    with pytest.raises(BeaconError, match="randomness must be 32 bytes"):
        verify_round(QUICKNET, dataclasses.replace(q, randomness=q.randomness + "00"))
    with pytest.raises(BeaconError, match="beacon round: unknown field"):
        BeaconRound.from_dict({**q.to_dict(), "extra": 1})
    with pytest.raises(BeaconError, match="beacon round: .*missing"):
        BeaconRound.from_dict({"round": 3, "chain_hash": QUICKNET.chain_hash})


def test_identity_and_off_subgroup_signatures_are_refused() -> None:
    q = _first(QUICKNET)
    identity = "c0" + "00" * 47  # compressed point at infinity
    with pytest.raises(BeaconError, match="signature is the point at infinity"):
        verify_round(QUICKNET, _resigned(q, identity))
    with pytest.raises(BeaconError, match="signature is not in the prime-order subgroup"):
        verify_round(QUICKNET, _resigned(q, _point_outside_g1_subgroup()))


def _point_outside_g1_subgroup() -> str:
    """A compressed point on y^2 = x^3 + 4 whose order is not r (G1's cofactor is ~2^126)."""
    from py_ecc.optimized_bls12_381 import field_modulus as p

    x = 1
    while pow(x**3 + 4, (p - 1) // 2, p) != 1:
        x += 1
    return (x | (1 << 383)).to_bytes(48, "big").hex()


def test_round_hex_is_normalised_and_round_trips() -> None:
    q = _first(QUICKNET)
    upper = BeaconRound.from_dict({k: (v.upper() if isinstance(v, str) else v)
                                   for k, v in q.to_dict().items()})
    assert upper == q
    assert BeaconRound.from_dict(q.to_dict()) == q
    assert "previous_signature" not in q.to_dict()
    d = _first(DEFAULT)
    assert BeaconRound.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    with pytest.raises(BeaconError, match="beacon round says chain"):
        BeaconRound.from_dict(q.to_dict(), chain_hash=DEFAULT.chain_hash)


# --- chains and time ------------------------------------------------------------------------


def test_chain_hashes_are_drands() -> None:
    # values from drand/tlock networks/fixed/fixed_test.go; the hash covers the ID but for "default"
    assert compute_chain_hash(3, 1692803367, QUICKNET.public_key, QUICKNET.genesis_seed,
                              "quicknet") == QUICKNET.chain_hash
    assert compute_chain_hash(30, 1595431050, DEFAULT.public_key, DEFAULT.genesis_seed,
                              "default") == DEFAULT.chain_hash
    assert all(c.public for c in CHAINS.values())


def test_chain_records_are_checked() -> None:
    assert BeaconChain.from_dict(QUICKNET.to_dict()) == QUICKNET
    tampered = {**QUICKNET.to_dict(), "period_s": 30}
    with pytest.raises(BeaconError, match="chain_hash .* does not match"):
        BeaconChain.from_dict(tampered)
    swapped_key = {**QUICKNET.to_dict(), "public_key": _flip(QUICKNET.public_key, 90)}
    with pytest.raises(BeaconError, match="does not match its key"):
        BeaconChain.from_dict(swapped_key)
    with pytest.raises(BeaconError, match="public_key must be 48 bytes"):
        BeaconChain.from_dict({**QUICKNET.to_dict(), "scheme": "pedersen-bls-chained"})
    with pytest.raises(BeaconError, match="drand quicknet, but the record differs from it: public"):
        BeaconChain.from_dict({**QUICKNET.to_dict(), "public": False})
    with pytest.raises(BeaconError, match="unsupported scheme 'bls-bn254-unchained-on-g1'"):
        BeaconChain.from_dict({**QUICKNET.to_dict(), "scheme": "bls-bn254-unchained-on-g1"})
    with pytest.raises(BeaconError, match="beacon chain: unknown field"):
        BeaconChain.from_dict({**QUICKNET.to_dict(), "url": "https://api.drand.sh"})


def test_get_chain_by_name_alias_hash_and_did_you_mean() -> None:
    assert get_chain("mainnet") is DEFAULT
    assert get_chain(" QuickNet ") is QUICKNET
    assert get_chain(QUICKNET.chain_hash) is QUICKNET
    with pytest.raises(BeaconError, match="did you mean 'quicknet'"):
        get_chain("quiknet")
    with pytest.raises(BeaconError, match="unknown beacon chain 'evmnet'"):
        get_chain("evmnet")


def test_round_time_follows_drand() -> None:
    # round 1 is published at genesis (drand/drand common/time.go); quicknet went live on
    # 2023-08-23 (drand/website docs/blog/2023-10-16-quicknet-is-live.md)
    assert round_time(QUICKNET, 1) == 1692803367
    day = dt.datetime.fromtimestamp(round_time(QUICKNET, 1), dt.timezone.utc).date()
    assert day == dt.date(2023, 8, 23)
    assert round_time(QUICKNET, 12040883) == 1692803367 + 12040882 * 3
    assert round_time(DEFAULT, 72785) == 1595431050 + 72784 * 30
    with pytest.raises(BeaconError, match="round must be an integer >= 1"):
        round_time(QUICKNET, 0)


def test_first_round_after_matches_drands_next_round(local: LocalTestBeacon) -> None:
    # drand/drand common/time_test.go TestChainNextRound: period 2, at genesis the next round
    # is 2 at genesis + 2, then round 3 at genesis + 4
    chain, g = local.chain, local.chain.genesis_time
    assert first_round_after(chain, g - 100) == 1
    assert first_round_after(chain, g) == 2 and round_time(chain, 2) == g + 2
    assert first_round_after(chain, g + 1.5) == 2
    assert first_round_after(chain, g + 2) == 3 and round_time(chain, 3) == g + 4
    for t in (g - 0.5, g + 0.1, g + 3.9, g + 1e6 + 0.3):
        n = first_round_after(chain, t)
        assert round_time(chain, n) > t and (n == 1 or round_time(chain, n - 1) <= t)
    with pytest.raises(BeaconError, match="finite number of unix seconds"):
        first_round_after(chain, float("nan"))


def test_parse_beacon_arg() -> None:
    assert parse_beacon_arg("drand:quicknet:12345") == ("quicknet", 12345)
    assert parse_beacon_arg("drand:quicknet") == ("quicknet", None)
    for bad in ("quicknet:5", "drand:", "drand:quicknet:0", "drand:quicknet:x", "drand:a:1:2"):
        with pytest.raises(BeaconError, match="beacon"):
            parse_beacon_arg(bad)


# --- local test beacon ----------------------------------------------------------------------


def test_local_beacon_signs_verifiable_rounds(local: LocalTestBeacon) -> None:
    chain = local.chain
    assert chain.public is False and chain.scheme == QUICKNET.scheme
    assert chain.period_s == 2 and round_time(chain, 1) == 1_700_000_000
    r = local.sign(7)
    verify_round(chain, r)
    assert r.randomness == hashlib.sha256(bytes.fromhex(r.signature)).hexdigest()
    assert local.sign(7) == r and local.sign(8).randomness != r.randomness
    assert BeaconChain.from_dict(chain.to_dict()) == chain
    with pytest.raises(BeaconError, match="says public, but it is not a known public chain"):
        BeaconChain.from_dict({**chain.to_dict(), "public": True})
    assert "secret_key" not in repr(local)


def test_local_rounds_fail_against_quicknet(local: LocalTestBeacon) -> None:
    r = local.sign(12040883)
    with pytest.raises(BeaconError, match="not from quicknet"):
        verify_round(QUICKNET, r)
    with pytest.raises(BeaconError, match="does not verify against the chain's public key"):
        verify_round(QUICKNET, dataclasses.replace(r, chain_hash=QUICKNET.chain_hash))


def test_local_beacon_key_file(local: LocalTestBeacon, tmp_path: Path) -> None:
    path = local.save(tmp_path / "beacon.key")
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = LocalTestBeacon.load(path)
    assert again == local and again.chain == local.chain
    assert again.sign(3) == local.sign(3)
    with pytest.raises(OutputError, match="exists"):
        local.save(path)
    record = json.loads(path.read_text())
    (tmp_path / "edited.key").write_text(json.dumps({**record, "period_s": 3}))
    with pytest.raises(BeaconError, match="chain_hash does not match"):
        LocalTestBeacon.load(tmp_path / "edited.key")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(BeaconError, match="not a tdp-local-test-beacon key file"):
        LocalTestBeacon.load(tmp_path / "other.json")
    with pytest.raises(BeaconError, match="not found"):
        LocalTestBeacon.load(tmp_path / "missing.key")


def test_local_beacon_refuses_bad_parameters() -> None:
    with pytest.raises(BeaconError, match="public chain's name"):
        LocalTestBeacon.create(name="quicknet")
    with pytest.raises(BeaconError, match="period_s must be an integer >= 1"):
        LocalTestBeacon.create(period_s=0)
    with pytest.raises(BeaconError, match="secret key must be"):
        LocalTestBeacon(secret_key=0)
    with pytest.raises(BeaconError, match="round must be an integer >= 1"):
        LocalTestBeacon.create(genesis_time=0).sign(0)


def test_importing_the_beacon_code_leaves_the_recursion_limit_alone():
    """py_ecc raises the limit to 100,000 on import; with it, deeply nested JSON posted to
    `tdp serve` overflowed a thread's C stack and killed the server (seen in the test suite)."""
    import subprocess
    import sys

    code = "import sys; a = sys.getrecursionlimit(); import harness.cli; import harness.protocol.beacon; print(a, sys.getrecursionlimit())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = out.stdout.split()
    assert before == after, out.stdout
