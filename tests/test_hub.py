"""No network: a hub id fails in seconds saying so; a local model folder never touches the
network at all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.backends.base import BackendError
from harness.backends.hub import probe_hub, require_hub_or_cache
from tests.tiny_lm import tiny_lm_dir

CLOSED = "http://127.0.0.1:9"  # discard port: nothing listens, the connection is refused


def test_probe_reports_an_unreachable_hub_quickly():
    t0 = time.monotonic()
    why = probe_hub(CLOSED, timeout=2.0)
    assert why and time.monotonic() - t0 < 4.0
    with socket.socket() as silent:  # accepts connections, never answers: a stalled network
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        t0 = time.monotonic()
        why = probe_hub(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5)
        assert why and time.monotonic() - t0 < 2.0, why


def test_hub_id_without_network_is_one_line_in_seconds(tmp_path):
    from canaries.canary_set import Plan, new_canary_set, save_canary_set
    from canaries.generators import words_spec

    cs, seed = new_canary_set(words_spec(5), 3, Plan(counterfactuals=20))
    canaries = save_canary_set(cs, tmp_path / "c.json", seed)
    env = {**os.environ, "HF_ENDPOINT": CLOSED, "HF_HOME": str(tmp_path / "hf"),
           "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", "audit", "--model",
         "hf:some-org/some-model", "--canaries", str(canaries), "-o",
         str(tmp_path / "r")],
        capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1], timeout=120,
    )
    seconds = time.monotonic() - t0
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("Error: "), p.stderr
    assert "no network" in p.stderr and "some-org/some-model" in p.stderr
    assert seconds < 20, f"took {seconds:.1f} s"


def test_local_folder_never_touches_the_network(tmp_path_factory, monkeypatch):
    from harness.backends.hf import HFBackend

    model = tiny_lm_dir(tmp_path_factory)

    def no_network(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError(f"network access while loading a local folder: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert require_hub_or_cache(str(model)) is True
    backend = HFBackend(str(model), dtype="float32", device="cpu")
    assert backend.token_logprobs(["a local model, offline"])[0].size > 0


def test_unreachable_hub_without_cache_raises_no_network(monkeypatch):
    from harness.backends import hub

    monkeypatch.setattr(hub, "probe_hub", lambda: "connection refused")
    monkeypatch.setattr(hub, "in_local_cache", lambda repo, rev=None: False)
    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    with pytest.raises(BackendError, match="no network .*connection refused"):
        require_hub_or_cache("org/model")
    monkeypatch.setattr(hub, "in_local_cache", lambda repo, rev=None: True)
    assert require_hub_or_cache("org/model") is True  # cached: load it without the hub
