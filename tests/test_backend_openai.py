"""The openai backend against a real `tdp serve` on loopback, and the server's own behaviour."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from tiny_lm import TEXTS, serving, tiny_lm_dir

from harness.backends import BackendError, load_backend, parse_model_spec
from harness.backends.openai_compat import echo_token_logprobs, split_endpoint, vllm_prompt_logprobs
from harness.serve.server import ScoringHandler

SECRET = "sk-test-7f3a9c-do-not-leak"


def post(url: str, body: dict, key: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# --- spec and response parsing (pure) ------------------------------------------------------
def test_spec_syntax():
    spec = parse_model_spec(
        "openai:http://127.0.0.1:8000/v1/meta-llama/Llama-3.2-1B,concurrency=8", ("hf", "openai")
    )
    assert spec.backend == "openai" and spec.options == {"concurrency": 8}
    assert split_endpoint(spec.model) == ("http://127.0.0.1:8000/v1", "meta-llama/Llama-3.2-1B")
    assert split_endpoint("https://h.example/api/v1") == ("https://h.example/api/v1", None)
    assert split_endpoint("http://h:1/v1/org/v1") == ("http://h:1/v1", "org/v1")
    # a served name that is an absolute path keeps its slash (double slash after /v1)
    assert split_endpoint("http://h:8000/v1//abs/path/model") == (
        "http://h:8000/v1",
        "/abs/path/model",
    )
    assert split_endpoint("http://h:8000/v1/") == ("http://h:8000/v1", None)
    for bad in ("127.0.0.1:8000/v1/m", "http://h:8000/m", "ftp://h/v1/m"):
        with pytest.raises(BackendError, match="/v1"):
            split_endpoint(bad)
    with pytest.raises(BackendError, match="drop @main"):
        load_backend("openai:http://127.0.0.1:9/v1/m@main")
    with pytest.raises(BackendError, match="no credentials in the URL"):
        split_endpoint("http://user:pw@h:8000/v1/m")


def test_echo_slicing_and_length_checks():
    ids = [0, 11, 12, 13]
    choice = {
        "logprobs": {"token_logprobs": [None, -1.0, -2.0, -3.0, -0.5], "tokens": list("abcde")}
    }
    np.testing.assert_array_equal(echo_token_logprobs(ids, choice), [-1.0, -2.0, -3.0])
    no_gen = {"logprobs": {"token_logprobs": [None, -1.0, -2.0, -3.0]}}  # EOS generated, not echoed
    np.testing.assert_array_equal(echo_token_logprobs(ids, no_gen), [-1.0, -2.0, -3.0])
    generated_only = {"logprobs": {"token_logprobs": [-0.5]}}  # a server that ignores echo
    with pytest.raises(BackendError, match="1 log-probs for a prompt of 4 tokens"):
        echo_token_logprobs(ids, generated_only)
    extra_bos = {"logprobs": {"token_logprobs": [None, -9.0, -1.0, -2.0, -3.0, -0.5]}}
    with pytest.raises(BackendError, match="6 log-probs"):
        echo_token_logprobs(ids, extra_bos)
    with pytest.raises(BackendError, match="first prompt token"):
        echo_token_logprobs(ids, {"logprobs": {"token_logprobs": [-4.0, -1.0, -2.0, -3.0]}})
    with pytest.raises(BackendError, match="no logprobs"):
        echo_token_logprobs(ids, {"text": "x"})


def test_vllm_prompt_logprobs_read_by_token_id():
    ids = [0, 11, 12]
    pl = [
        None,
        {"5": {"logprob": -0.1, "rank": 1}, "11": {"logprob": -2.0, "rank": 4}},
        {"12": {"logprob": -3.0, "rank": 9}},
    ]
    np.testing.assert_array_equal(vllm_prompt_logprobs(ids, {"prompt_logprobs": pl}), [-2.0, -3.0])
    with pytest.raises(BackendError, match="differs"):
        vllm_prompt_logprobs(ids, {"prompt_logprobs": pl, "prompt_token_ids": [1, *ids]})
    with pytest.raises(BackendError, match="2 prompt log-prob positions"):
        vllm_prompt_logprobs(ids, {"prompt_logprobs": pl[:2]})
    with pytest.raises(BackendError, match="lack prompt token 12"):
        vllm_prompt_logprobs(ids, {"prompt_logprobs": [None, pl[1], {"7": {"logprob": -1.0}}]})


# --- the backend against tdp serve ---------------------------------------------------------
def test_scores_match_hf_in_both_modes(server, model_dir, hf_reference):
    ref = hf_reference.token_logprobs(list(TEXTS))
    for extra in ("", ",prompt_logprobs=true"):
        backend = load_backend(f"openai:{server.url}/tiny,tokenizer={model_dir}{extra}")
        got = backend.token_logprobs(list(TEXTS))
        for g, r in zip(got, ref, strict=True):
            assert g.dtype == np.float32 and g.shape == r.shape
            np.testing.assert_allclose(g, r, atol=1e-5)


def test_batching_and_concurrency_do_not_change_scores_or_order(server, model_dir):
    one = load_backend(f"openai:{server.url}/tiny,tokenizer={model_dir},batch_size=1,concurrency=4")
    big = load_backend(f"openai:{server.url},tokenizer={model_dir},batch_size=16,concurrency=1")
    texts = list(TEXTS) * 3
    for a, b in zip(one.token_logprobs(texts), big.token_logprobs(texts), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_generate_matches_hf_greedy_and_counts_samples(server, model_dir, hf_reference):
    backend = load_backend(f"openai:{server.url}/tiny,tokenizer={model_dir}")
    prompts = ["The quick brown", "Return the"]
    greedy = backend.generate(prompts, max_new_tokens=6, n=2)
    assert greedy == [[row[0]] * 2 for row in hf_reference.generate(prompts, max_new_tokens=6)]
    sampled = backend.generate(prompts, max_new_tokens=6, n=3, temperature=1.0, seed=5)
    assert [len(r) for r in sampled] == [3, 3] and all(
        isinstance(t, str) for r in sampled for t in r
    )
    assert sampled == backend.generate(prompts, max_new_tokens=6, n=3, temperature=1.0, seed=5)


def test_fingerprint_names_what_the_server_serves(server, model_dir, hf_reference):
    fp = load_backend(f"openai:{server.url}/tiny,tokenizer={model_dir}").fingerprint()
    ref = hf_reference.fingerprint()
    assert fp.backend == "openai" and fp.model == "tiny" and fp.dtype == "float32"
    assert fp.weights_sha256 == ref.weights_sha256 and fp.tokenizer_sha256 == ref.tokenizer_sha256
    assert fp.identity_digest() == ref.identity_digest()  # same audit seed as scoring the weights
    assert fp.settings["base_url"] == server.url


def test_wrong_model_name_and_wrong_tokenizer_are_refused(server, model_dir, tmp_path_factory):
    with pytest.raises(BackendError, match="does not serve 'other'.*tiny"):
        load_backend(f"openai:{server.url}/other,tokenizer={model_dir}")
    other_tok = tiny_lm_dir(tmp_path_factory, seed=1)  # same recipe: same tokenizer, fine
    load_backend(f"openai:{server.url}/tiny,tokenizer={other_tok}")
    from harness.train import train_tokenizer

    different = tmp_path_factory.mktemp("tok")
    train_tokenizer(["completely different corpus " * 50], vocab_size=300).save_pretrained(
        different
    )
    with pytest.raises(BackendError, match="tokenizer"):
        load_backend(f"openai:{server.url}/tiny,tokenizer={different}")


def test_api_key_from_env_only_and_never_leaked(model_dir, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    with serving(model_dir, api_key=SECRET) as srv:
        monkeypatch.delenv("TDP_TEST_KEY", raising=False)
        with pytest.raises(BackendError, match="HTTP 401.*TDP_TEST_KEY is unset"):
            load_backend(f"openai:{srv.url}/tiny,tokenizer={model_dir},api_key_env=TDP_TEST_KEY")
        monkeypatch.setenv("TDP_TEST_KEY", "sk-wrong")
        with pytest.raises(BackendError, match="HTTP 401") as err:
            load_backend(f"openai:{srv.url}/tiny,tokenizer={model_dir},api_key_env=TDP_TEST_KEY")
        assert "sk-wrong" not in str(err.value)
        monkeypatch.setenv("TDP_TEST_KEY", SECRET)
        backend = load_backend(
            f"openai:{srv.url}/tiny,tokenizer={model_dir},api_key_env=TDP_TEST_KEY"
        )
        assert len(backend.token_logprobs([TEXTS[0]])[0]) > 0
        with pytest.raises(BackendError, match="HTTP 400") as err:
            backend.generate(["x"], max_new_tokens=10_000)
        leaks = [
            json.dumps(backend.fingerprint().to_dict()),
            repr(backend.client),
            str(err.value),
            caplog.text,
            repr(vars(backend)),
        ]
        assert not [s for s in leaks if SECRET in s]
    with pytest.raises(BackendError, match="never put an API key"):
        load_backend(f"openai:http://127.0.0.1:9/v1/m,api_key={SECRET}")


class FlakyHandler(ScoringHandler):
    """Fails the first requests with the statuses queued on the server, then answers normally."""

    def _dispatch(self, method: str) -> None:
        if self.path.endswith("/completions") and self.server.failures:
            status = self.server.failures.pop(0)
            self.server.seen.append(status)
            self._send(status, {"error": {"message": f"injected {status}", "code": status}})
            return
        super()._dispatch(method)


def test_retries_429_and_5xx_then_succeeds(model_dir, hf_reference):
    with serving(model_dir, handler=FlakyHandler) as srv:
        srv.failures, srv.seen = [429, 503, 500], []
        backend = load_backend(
            f"openai:{srv.url}/tiny,tokenizer={model_dir},backoff_s=0.01,concurrency=1"
        )
        got = backend.token_logprobs([TEXTS[1]])
        assert srv.seen == [429, 503, 500]
        np.testing.assert_allclose(got[0], hf_reference.token_logprobs([TEXTS[1]])[0], atol=1e-5)
        srv.failures = [503] * 10
        with pytest.raises(BackendError, match="after 3 attempts: HTTP 503: injected 503"):
            load_backend(
                f"openai:{srv.url}/tiny,tokenizer={model_dir},backoff_s=0.01,max_retries=2"
            ).token_logprobs([TEXTS[1]])
        srv.failures = [400]
        with pytest.raises(BackendError, match="HTTP 400: injected 400"):
            backend.token_logprobs([TEXTS[1]])


def test_unreachable_server_gives_a_clear_error(model_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(
        BackendError, match=rf"cannot get an answer .*127.0.0.1:{port}/v1 after 2 attempts"
    ):
        load_backend(
            f"openai:http://127.0.0.1:{port}/v1/tiny,tokenizer={model_dir},max_retries=1,backoff_s=0.01"
        )


# --- the server itself ---------------------------------------------------------------------
def test_server_follows_vllm_echo_format(server, hf_reference):
    ids = hf_reference.encode(TEXTS[0])
    status, reply = post(
        server.url + "/completions",
        {
            "model": "tiny",
            "prompt": ids,
            "echo": True,
            "logprobs": 2,
            "max_tokens": 1,
            "temperature": 0,
            "prompt_logprobs": 1,
            "return_token_ids": True,
        },
    )
    assert status == 200 and reply["object"] == "text_completion" and reply["model"] == "tiny"
    (choice,) = reply["choices"]
    lp = choice["logprobs"]
    assert len(lp["token_logprobs"]) == len(lp["tokens"]) == len(lp["top_logprobs"]) == len(ids) + 1
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert all(
        len(t) <= 3 for t in lp["top_logprobs"][1:]
    )  # actual + top-2 (string keys may merge)
    assert choice["prompt_token_ids"] == ids and len(choice["token_ids"]) == 1
    assert choice["prompt_logprobs"][0] is None and len(choice["prompt_logprobs"]) == len(ids)
    ranks = [e[str(t)]["rank"] for e, t in zip(choice["prompt_logprobs"][1:], ids[1:], strict=True)]
    assert min(ranks) >= 1 and reply["usage"]["prompt_tokens"] == len(ids)
    ref = hf_reference.token_logprobs([TEXTS[0]])[0]
    np.testing.assert_allclose(lp["token_logprobs"][1 : len(ids)], ref, atol=1e-5)


@pytest.mark.parametrize(
    "body,status,message",
    [
        ({"model": "nope", "prompt": [1, 2]}, 404, "does not exist"),
        ({"prompt": [1, 2], "stream": True}, 400, "stream"),
        ({"prompt": [1, 2], "top_p": 0.9}, 400, "top_p"),
        ({"prompt": [1, 2], "frobnicate": 1}, 400, "frobnicate"),
        ({"prompt": [1, 99999]}, 400, "token ids"),
        ({"prompt": []}, 400, "prompt"),
        ({"prompt": [1, 2], "max_tokens": 0}, 400, "max_tokens"),
        ({"prompt": [1, 2], "logprobs": 50}, 400, "logprobs"),
    ],
)
def test_server_refuses_what_it_does_not_do(server, body, status, message):
    got, reply = post(server.url + "/completions", body)
    assert got == status and message in reply["error"]["message"]


def test_tdp_serve_command_serves_on_loopback(model_dir):
    env = {**os.environ, "TDP_SERVE_KEY": SECRET}
    cmd = [
        str(Path(sys.executable).parent / "tdp"),
        "serve",
        f"hf:{model_dir},dtype=float32",
        "--port",
        "0",
        "--served-name",
        "tiny",
        "--api-key-env",
        "TDP_SERVE_KEY",
    ]
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).parent.parent
    )
    try:
        url = None
        for line in proc.stderr:
            m = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
            if m:
                url = m.group(1)
                break
        assert url, "tdp serve did not report its address"
        req = urllib.request.Request(url + "/models", headers={"Authorization": f"Bearer {SECRET}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert json.loads(resp.read())["data"][0]["id"] == "tiny"
        status, _ = post(url + "/completions", {"prompt": [1, 2]})
        assert status == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_server_sampled_echo_logprobs_are_teacher_forced(server, hf_reference):
    ids = hf_reference.encode(TEXTS[1])
    body = {
        "prompt": [ids],
        "echo": True,
        "logprobs": 1,
        "max_tokens": 4,
        "temperature": 1.0,
        "seed": 7,
        "return_token_ids": True,
    }
    status, reply = post(server.url + "/completions", body)
    assert status == 200
    (choice,) = reply["choices"]
    gen = choice["token_ids"]
    assert 1 <= len(gen) <= 4 and choice["prompt_token_ids"] == ids
    lps = choice["logprobs"]["token_logprobs"]
    assert len(lps) == len(ids) + len(gen)
    whole = torch_logprobs(hf_reference, ids + gen)
    np.testing.assert_allclose(lps[1:], whole, atol=1e-5)
    assert post(server.url + "/completions", body)[1]["choices"][0]["token_ids"] == gen  # seeded


def torch_logprobs(backend, ids: list[int]) -> np.ndarray:
    """Teacher-forced log-probs of an id sequence with the reference model (fp32)."""
    import torch

    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        logp = torch.log_softmax(logits, -1)
        return logp.gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1).numpy()


def test_black_box_audit_equals_white_box_audit(server, model_dir, tmp_path):
    """The whole canary-rank audit through tdp serve gives the hf audit's seed, scores and p."""
    from canaries.canary_set import Plan, new_canary_set, save_canary_set
    from canaries.drbg import derive_seed
    from canaries.generators import words_spec
    from harness.audit import audit_from_paths

    plan = Plan(score="loss", statistic="rank-sum", counterfactuals=40, alpha=0.05)
    cs, seed = new_canary_set(words_spec(4), 3, plan, seed=derive_seed("test-openai-audit", "1"))
    path = save_canary_set(cs, tmp_path / "c.json", seed)
    white = audit_from_paths(f"hf:{model_dir},dtype=float32", path, progress=False)
    black = audit_from_paths(
        f"openai:{server.url}/tiny,tokenizer={model_dir}", path, progress=False
    )
    assert black.audit_seed == white.audit_seed
    assert [i.text for i in black.items] == [i.text for i in white.items]
    for b, w in zip(black.items, white.items, strict=True):
        assert b.scores["loss"] == pytest.approx(w.scores["loss"], abs=1e-5)
    assert black.primary.result.pvalue == white.primary.result.pvalue
    # `tdp verify` accepts an audit made through openai: and re-scores through the server
    from harness.audit import make_report
    from harness.verify import VerifyOptions, verify_report
    from harness.verify.rescore import RescorePlan

    opts = VerifyOptions((path,), rescore=True, rescore_plan=RescorePlan(10, seed=0))
    checks = verify_report(make_report("black box", [black]), opts)
    assert [c for c in checks if c.verdict == "FAIL"] == []
    assert next(c for c in checks if c.name == "rescore").verdict == "ok"


def test_tdp_serve_errors_are_one_line(model_dir, monkeypatch):
    from click.testing import CliRunner

    from harness.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["serve", "hf:/nonexistent/model"])
    assert res.exit_code == 1 and "model directory not found" in res.output
    monkeypatch.delenv("TDP_NO_SUCH_KEY", raising=False)
    res = runner.invoke(main, ["serve", f"hf:{model_dir}", "--api-key-env", "TDP_NO_SUCH_KEY"])
    assert res.exit_code == 1 and "TDP_NO_SUCH_KEY" in res.output
    res = runner.invoke(main, ["serve", "openai:http://127.0.0.1:9/v1/m"])
    assert res.exit_code == 1 and "serves hf models" in res.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        res = runner.invoke(
            main, ["serve", f"hf:{model_dir}", "--port", str(busy.getsockname()[1])]
        )
    assert res.exit_code == 1 and "cannot listen on 127.0.0.1" in res.output


def test_text_longer_than_the_served_context_is_refused_before_sending(server, model_dir):
    backend = load_backend(f"openai:{server.url}/tiny,tokenizer={model_dir}")
    assert backend.max_length == 127  # max_model_len 128, minus the one generated token
    with pytest.raises(BackendError, match="exceeds the model's context of 127"):
        backend.token_logprobs([" ".join(["word"] * 300)])


class NoClaimHandler(ScoringHandler):
    """Like a vLLM server: no `tdp` identity in /v1/models, but a /tokenize route."""

    def _send(self, status: int, payload: dict) -> None:
        for card in payload.get("data", []):
            card.pop("tdp", None)
        super()._send(status, payload)


def test_tokenizer_probe_via_tokenize_route(model_dir, tmp_path):
    from harness.train import train_tokenizer

    different = tmp_path / "tok"
    train_tokenizer(["a completely different corpus " * 50], vocab_size=300).save_pretrained(
        different
    )
    with serving(model_dir, handler=NoClaimHandler) as srv:
        ok = load_backend(f"openai:{srv.url}/tiny,tokenizer={model_dir}")
        assert ok.fingerprint().weights_sha256 is None and ok.fingerprint().dtype == "unknown"
        with pytest.raises(BackendError, match="tokenize the probe text differently"):
            load_backend(f"openai:{srv.url}/tiny,tokenizer={different}")
        unchecked = f"openai:{srv.url}/tiny,tokenizer={different},check_tokenizer=false"
        assert load_backend(unchecked).model_id == "tiny"
    with pytest.raises(BackendError, match="batch_size"):
        load_backend("openai:http://127.0.0.1:9/v1/m,batch_size=0")
