"""What clients other than ours need from `tdp serve` (issue 9): empty prompts, `max_tokens:
null`, stop strings and stop token ids, greedy n > 1, served names that are absolute paths, and
the official `openai` Python client. lm-evaluation-harness runs in tests/test_lm_eval_serve.py.
"""

from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest
import torch
from tiny_lm import TEXTS, serving

from harness.backends import BackendError, load_backend
from harness.serve.completions import ScoringModel, completions
from harness.serve.limits import RequestError
from harness.serve.server import ScoringHandler
from harness.serve.stop_rules import MAX_STOP_STRINGS, StopRule, StopWatch, ending, first_stop


def post(srv, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        srv.url + "/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def greedy(srv, prompt, max_tokens: int = 20, **extra) -> dict:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, **extra}
    status, reply = post(srv, {"return_token_ids": True, **body})
    assert status == 200, reply
    return reply


# --- empty prompts ---------------------------------------------------------------------------
def test_empty_prompt_is_a_400_in_openai_shape_unless_the_tokenizer_adds_bos(server, model_dir):
    for prompt in ("", [""], ["x", ""]):
        status, reply = post(server, {"prompt": prompt, "max_tokens": 2})
        assert status == 400 and set(reply) == {"error"}
        err = reply["error"]
        assert err["type"] == "BadRequestError" and err["code"] == 400
        assert "decoder prompt cannot be empty" in err["message"]  # vLLM's words
    # a tokenizer that adds BOS turns "" into one token: accepted, as vLLM accepts it
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    bos = AutoTokenizer.from_pretrained(model_dir)
    special = bos.eos_token
    bos.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{special} $A", special_tokens=[(special, bos.eos_token_id)]
    )
    assert bos.encode("") == [bos.eos_token_id]
    sm = ScoringModel(server.sm.backend, "tiny")
    sm.tokenizer = bos
    reply = completions({"prompt": "", "max_tokens": 3, "temperature": 0}, sm)
    assert reply["usage"]["prompt_tokens"] == 1 and len(reply["choices"]) == 1


# --- max_tokens: null ------------------------------------------------------------------------
def test_max_tokens_null_generates_up_to_the_context(server):
    ctx = server.sm.max_model_len
    ids = server.sm.tokenizer.encode(TEXTS[0])
    filled = greedy(server, ids, max_tokens=None)
    (choice,) = filled["choices"]
    room = ctx - len(ids)
    explicit = greedy(server, ids, max_tokens=room)["choices"][0]
    assert choice["token_ids"] == explicit["token_ids"] and choice["text"] == explicit["text"]
    if choice["finish_reason"] == "length":
        assert filled["usage"]["completion_tokens"] == room
    else:  # ended by EOS before the context was full
        assert choice["token_ids"][-1] == server.sm.tokenizer.eos_token_id
    full = list(range(1, ctx + 1))  # a prompt that fills the context leaves no room
    status, reply = post(server, {"prompt": full, "max_tokens": None})
    assert status == 400 and "no room" in reply["error"]["message"]
    echoed = greedy(server, full, max_tokens=None, echo=True, logprobs=0)
    assert echoed["usage"]["completion_tokens"] == 0  # echo with null: nothing left to add


# --- stop strings and stop token ids ---------------------------------------------------------
def _stop_from(text: str) -> str:
    """Two letters from inside a generated text, so that the stop string surely occurs."""
    m = re.search(r"(?<=.)[A-Za-z]{2}", text)
    if m is None:
        pytest.fail(f"no two-letter run in the greedy text {text!r}")
    return m.group(0)


def test_stop_string_ends_the_text_before_it_and_stops_generating(server):
    tok = server.sm.tokenizer
    ids = tok.encode(TEXTS[1])
    free = greedy(server, ids)["choices"][0]
    stop = _stop_from(free["text"])
    cut = free["text"].index(stop)
    reply = greedy(server, ids, stop=[stop, "\u2603never\u2603"], logprobs=0)
    (c,) = reply["choices"]
    assert c["text"] == free["text"][:cut] and stop not in c["text"]
    assert (c["finish_reason"], c["stop_reason"]) == ("stop", stop)
    # generation stopped at the token completing the stop string, which is returned (as vLLM)
    n = len(c["token_ids"])
    assert c["token_ids"] == free["token_ids"][:n] and n < len(free["token_ids"])
    assert stop in tok.decode(c["token_ids"]) and stop not in tok.decode(c["token_ids"][:-1])
    assert reply["usage"]["completion_tokens"] == n == len(c["logprobs"]["tokens"])
    kept = greedy(server, ids, stop=stop, include_stop_str_in_output=True)["choices"][0]
    assert kept["text"] == free["text"][: cut + len(stop)]
    echoed = greedy(server, ids, stop=stop, echo=True)["choices"][0]
    assert echoed["text"] == tok.decode(ids) + free["text"][:cut]


def test_the_stop_string_that_starts_first_wins(server):
    free = greedy(server, TEXTS[2])["choices"][0]["text"]
    first = _stop_from(free)
    later = free[free.index(first) + 1 :]
    later = _stop_from(later) if re.search(r"(?<=.)[A-Za-z]{2}", later) else "\u2603"
    c = greedy(server, TEXTS[2], stop=[later, first])["choices"][0]
    assert c["stop_reason"] == first and c["text"] == free[: free.index(first)]


def test_stop_token_ids_end_generation_and_stay_in_the_output(server):
    free = greedy(server, TEXTS[0])["choices"][0]
    stop_id = free["token_ids"][2]
    c = greedy(server, TEXTS[0], stop_token_ids=[stop_id])["choices"][0]
    end = free["token_ids"].index(stop_id) + 1
    assert c["token_ids"] == free["token_ids"][:end]
    assert (c["finish_reason"], c["stop_reason"]) == ("stop", stop_id)


def test_sampled_choices_each_stop_at_their_own_stop_string(server):
    body = {"prompt": TEXTS[3], "max_tokens": 24, "n": 4, "temperature": 1.0, "seed": 5}
    body["return_token_ids"] = True
    free = post(server, body)[1]["choices"]
    stops = ["e", "a"]
    status, reply = post(server, {**body, "stop": stops})
    assert status == 200
    tok = server.sm.tokenizer
    assert sum(c["finish_reason"] == "stop" for c in reply["choices"]) >= 2
    for f, c in zip(free, reply["choices"], strict=True):
        assert not any(s in c["text"] for s in stops)
        hit = first_stop(f["text"], stops)
        if hit is None:
            assert c["token_ids"] == f["token_ids"] and c["stop_reason"] is None
        else:
            assert c["text"] == f["text"][: hit[0]] and c["stop_reason"] == hit[1]
            assert c["token_ids"] == f["token_ids"][: len(c["token_ids"])]
            assert hit[1] in tok.decode(c["token_ids"])


def test_ending_is_pure_and_cuts_at_the_first_stop(server):
    tok, eos = server.sm.tokenizer, server.sm.tokenizer.eos_token_id
    cont = tok.encode(" alpha beta gamma delta")
    end = ending(cont + [eos, 5, 6], StopRule(), tok, eos)
    assert end.tokens == cont + [eos] and (end.finish_reason, end.stop_reason) == ("stop", None)
    end = ending(cont, StopRule(strings=("gam",)), tok, eos)
    assert end.text == " alpha beta " and end.stop_reason == "gam"
    assert "gam" in tok.decode(end.tokens) and len(end.tokens) < len(cont)
    assert ending(cont, StopRule(), tok, eos).finish_reason == "length"


@pytest.mark.parametrize(
    "extra,words",
    [
        ({"stop": [""]}, "1..256 characters"),
        ({"stop": ["x" * 257]}, "1..256 characters"),
        ({"stop": [1]}, "list of strings"),
        ({"stop": {"a": 1}}, "list of strings"),
        ({"stop": ["s"] * (MAX_STOP_STRINGS + 1)}, f"at most {MAX_STOP_STRINGS}"),
        ({"stop_token_ids": [10**6]}, "stop_token_ids must be integers"),
        ({"stop_token_ids": [True]}, "stop_token_ids must be integers"),
        ({"stop_token_ids": 5}, "stop_token_ids must be a list"),
        ({"include_stop_str_in_output": "yes"}, "true or false"),
        ({"stop": "\ud800"}, "lone surrogate"),
    ],
)
def test_bad_stop_fields_are_a_400(server, extra, words):
    status, reply = post(server, {"prompt": "x", "max_tokens": 2, **extra})
    assert status == 400 and words in reply["error"]["message"]


def test_stop_watch_fires_at_the_token_completing_the_stop_string(server):
    """The windowed check agrees with a brute-force search over every prefix, multibyte text
    and stop strings spanning several tokens included."""
    tok = server.sm.tokenizer
    text = "Unicode survives: naïve café – ünïcode ✓ done. The quick brown fox."
    gen = tok.encode(text)
    prompt = [1, 2, 3]
    for stop in ("café – ü", "✓", "e.", " fox", "ïve c", "Unicode s", "nowhere"):
        rule = StopRule(strings=(stop,))
        watch = StopWatch(rule, tok, len(prompt), tok.eos_token_id)
        fired = None
        for k in range(1, len(gen) + 1):
            ids = torch.tensor([prompt + gen[:k]])
            if bool(watch(ids, None)[0]) and fired is None:
                fired = k
        brute = next((k for k in range(1, len(gen) + 1) if stop in tok.decode(gen[:k])), None)
        assert fired == brute and watch.ended.get(0) == brute, stop
        if brute is not None:
            end = ending(gen, rule, tok, tok.eos_token_id)
            assert len(end.tokens) == brute and end.text == text[: text.index(stop)]


def test_stop_rule_keeps_cancellation(server):
    polls = []

    def stop_after_five() -> bool:
        polls.append(1)
        return len(polls) > 5

    from harness.serve.model import Cancelled

    rule = StopRule(strings=("\u2603never\u2603",))
    with pytest.raises(Cancelled):
        server.sm.sample([1, 2, 3], 100, 2, 1.0, 1, stop_after_five, rule)
    assert len(polls) <= 8


# --- greedy n > 1 ----------------------------------------------------------------------------
class VLLMGreedyRule(ScoringHandler):
    """tdp serve with vLLM's rule on top: n > 1 at temperature 0 is a 400."""

    def _routes(self):
        routes = super()._routes()
        method, answer = routes["/v1/completions"]

        def strict(body):
            t = body.get("temperature")
            n = body.get("n") or 1
            if (1.0 if t is None else t) < 1e-5 and n > 1:
                raise RequestError(f"n must be 1 when using greedy sampling, got {n}.")
            return answer(body)

        return {**routes, "/v1/completions": (method, strict)}


def test_greedy_n_gives_n_identical_choices_on_the_server(server):
    reply = greedy(server, [TEXTS[0], TEXTS[1]], max_tokens=5, n=3)
    texts = [c["text"] for c in reply["choices"]]
    assert len(texts) == 6 and len(set(texts[:3])) == 1 and len(set(texts[3:])) == 1


def test_openai_backend_greedy_n_works_against_a_vllm_like_server(model_dir, hf_reference):
    with serving(model_dir, handler=VLLMGreedyRule) as srv:
        assert post(srv, {"prompt": "x", "n": 2, "temperature": 0})[0] == 400
        backend = load_backend(f"openai:{srv.url}/tiny,tokenizer={model_dir}")
        out = backend.generate(["The quick", "x"], max_new_tokens=4, n=3, temperature=0.0)
        assert out == hf_reference.generate(["The quick", "x"], max_new_tokens=4, n=3)
        assert all(len(row) == 3 and len(set(row)) == 1 for row in out)


def test_hf_generate_ids_greedy_n_gives_n_copies(hf_reference):
    out = hf_reference.generate_ids([[5, 6, 7]], 4, n=3)
    assert len(out[0]) == 3 and out[0][0] == out[0][1] == out[0][2]
    assert out == hf_reference.generate_ids([[5, 6, 7]], 4, n=3, seed=9)


# --- a served name that is an absolute path ----------------------------------------------------
def test_openai_spec_addresses_a_served_name_that_starts_with_a_slash(model_dir, hf_reference):
    name = str(model_dir.resolve())
    with serving(model_dir, name=name) as srv:
        backend = load_backend(f"openai:{srv.url}/{name},tokenizer={model_dir}")
        assert backend.model_id == name and name.startswith("/")
        got = backend.token_logprobs([TEXTS[0]])[0]
        np.testing.assert_allclose(got, hf_reference.token_logprobs([TEXTS[0]])[0], atol=1e-5)
        with pytest.raises(BackendError, match="does not serve"):
            load_backend(f"openai:{srv.url}/{name.lstrip('/')},tokenizer={model_dir}")
    with serving(model_dir) as srv:  # a trailing slash, as specs were written before, still works
        assert load_backend(f"openai:{srv.url}/tiny/,tokenizer={model_dir}").model_id == "tiny"


# --- the official openai client --------------------------------------------------------------
def test_official_openai_client_scores_stops_and_fills(server, hf_reference):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    ids = hf_reference.encode(TEXTS[0])
    scored = client.completions.create(
        model="tiny", prompt=ids, echo=True, logprobs=1, max_tokens=1, temperature=0
    )
    lp = scored.choices[0].logprobs.token_logprobs
    assert lp[0] is None and len(lp) == len(ids) + 1
    ref = hf_reference.token_logprobs([TEXTS[0]])[0]
    np.testing.assert_allclose(lp[1 : len(ids)], ref, atol=1e-5)
    free = client.completions.create(model="tiny", prompt=TEXTS[1], max_tokens=20, temperature=0)
    stop = _stop_from(free.choices[0].text)
    stopped = client.completions.create(
        model="tiny", prompt=TEXTS[1], max_tokens=20, temperature=0, stop=[stop]
    )
    assert stopped.choices[0].text == free.choices[0].text[: free.choices[0].text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    filled = client.completions.create(model="tiny", prompt="x", max_tokens=None, temperature=0)
    assert filled.usage.completion_tokens >= 1
    with pytest.raises(openai.BadRequestError, match="cannot be empty"):
        client.completions.create(model="tiny", prompt="", max_tokens=2)
