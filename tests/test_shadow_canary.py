"""Shadow-calibrated canary scores run only when the shadow set was provably fixed before the
canaries were assigned (protocol v2) and shares no text with the canary pool."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from canaries.canary_set import CanarySet, Plan, new_canary_set
from canaries.generators import words_spec
from harness.backends import load_backend
from harness.mi.shadow import ShadowError, ShadowSet, load_shadow_set, save_manifest
from harness.mi.shadow_canary import add_shadow_timestamp, check_shadow_fixed, shadow_canary_test
from harness.mi.shadow_train import ShadowRequest, train_shadow_set
from harness.protocol.beacon import round_time
from harness.protocol.local_beacon import LocalTestBeacon
from harness.protocol.local_tsa import LocalTSA
from harness.protocol.pool import assign, commit, derive_pool
from harness.protocol.timestamp import record_from_reply, timestamp_request
from tests.test_shadow import MICRO, _texts

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl (local TSA)")


@dataclass(frozen=True)
class World:
    cs: CanarySet
    stamped_before: ShadowSet
    unstamped: ShadowSet
    knows_the_pool: ShadowSet
    stamped_after: ShadowSet


def _stamp(s: ShadowSet, tsa: LocalTSA) -> ShadowSet:
    request = timestamp_request(s.digest())
    record = record_from_reply(tsa.stamp(request), s.digest(), tsa.chain_pem, request)
    return add_shadow_timestamp(s, record)[0]


def _copy_unstamped(s: ShadowSet, to: Path) -> ShadowSet:
    shutil.copytree(s.root, to)
    copy = replace(load_shadow_set(to), timestamps=())
    save_manifest(copy)
    return copy


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("shadow-canary")
    beacon, tsa = LocalTestBeacon.create(), LocalTSA.create(root / "tsa")
    pool = _texts(24)
    req = ShadowRequest(pool, 2, MICRO, b"shadow-canary-seed-01", vocab_size=300)
    before = _stamp(train_shadow_set(root / "a", req, progress=False), tsa)
    unstamped = _copy_unstamped(before, root / "b")
    seed = b"c" * 32
    cs, _ = commit(words_spec(6, prefix_length=2), 4, Plan(counterfactuals=40), beacon.chain,
                   3.0, seed)
    # the holder of a local beacon key can sign the round early, so can know the pool early:
    # the overlap check is what refuses a shadow set trained knowing it
    future = beacon.sign(int(cs.beacon["round"]))
    canaries, rest = derive_pool(cs, seed, future.randomness_bytes)
    leaky = ShadowRequest(pool[:20] + (canaries[0].text, rest[0].text), 1, MICRO,
                          b"shadow-canary-seed-02", vocab_size=300)
    knows = _stamp(train_shadow_set(root / "c", leaky, progress=False), tsa)
    time.sleep(max(0.0, round_time(beacon.chain, cs.beacon["round"]) - time.time() + 0.05))
    cs = assign(cs, seed, future)
    after = _stamp(_copy_unstamped(before, root / "d"), tsa)
    return World(cs, before, unstamped, knows, after)


def test_a_set_stamped_before_the_round_calibrates_canaries_exactly(world: World):
    said = check_shadow_fixed(world.cs, world.stamped_before)
    assert "before beacon round" in said and "LOCAL TEST TSA" in said
    target = load_backend(f"hf:{world.unstamped.model_dir(world.unstamped.models[0])}")
    for score in ("ref_calibration", "lira_offline"):
        r = shadow_canary_test(world.cs, target, world.stamped_before, b"o" * 16, score)
        assert r.kind == "bound" and 0 < r.pvalue <= 1 and r.k == 4 and r.m == 40
        assert r.details["shadow_models"] == 2 and r.details["shadow_score"] == score
        assert any("before beacon round" in a for a in r.assumptions)


def test_without_a_timestamp_it_is_refused(world: World):
    with pytest.raises(ShadowError, match="carries no valid timestamp"):
        check_shadow_fixed(world.cs, world.unstamped)


def test_a_set_stamped_after_the_round_is_refused(world: World):
    with pytest.raises(ShadowError, match="not before beacon round"):
        check_shadow_fixed(world.cs, world.stamped_after)


def test_a_set_trained_on_pool_items_is_refused(world: World):
    with pytest.raises(ShadowError, match="2 items of the canary set's pool"):
        check_shadow_fixed(world.cs, world.knows_the_pool)


def test_v1_sets_unassigned_sets_and_in_scores_are_refused(world: World):
    v1, _ = new_canary_set(words_spec(6), 2, Plan(counterfactuals=10), b"v" * 32)
    with pytest.raises(ShadowError, match="assigned protocol-v2"):
        check_shadow_fixed(v1, world.stamped_before)
    with pytest.raises(ShadowError, match="assigned protocol-v2"):
        check_shadow_fixed(replace(world.cs, assignment=None), world.stamped_before)
    with pytest.raises(ShadowError, match="need an IN sample"):
        shadow_canary_test(world.cs, None, world.stamped_before, b"o" * 16, "lira_online")
