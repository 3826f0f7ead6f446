"""`tdp serve` against hostile and clumsy clients (issue 14 item 2), on real loopback sockets.

One test per class: too many prompts or tokens, huge string prompts, slow-loris sockets and
connection floods, bad Content-Length, non-finite or mistyped fields, malformed JSON and bad
detokenize ids, unrouted methods, abandoned work, and a health check that says when the
model is busy. Every refusal must be a quick 4xx (503 when busy) in OpenAI's error shape.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from tiny_lm import tiny_lm_dir

from harness.serve.limits import NORMALIZER_SLACK, ServeLimits
from harness.serve.model import Cancelled, ModelTurns
from harness.serve.server import ScoringServer


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from harness.backends.hf import HFBackend
    from harness.serve.completions import ScoringModel

    backend = HFBackend(
        str(tiny_lm_dir(tmp_path_factory)), dtype="float32", device="cpu", batch_size=4
    )
    return ScoringModel(backend, "tiny")


@contextmanager
def serving(model, limits: ServeLimits | None = None) -> Iterator[ScoringServer]:
    server = ScoringServer(model, "127.0.0.1", 0, None, None, limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(model):
    with serving(model) as srv:
        yield srv


def raw(method: str, path: str, body: bytes = b"", length: str | None = None, **headers) -> bytes:
    hdrs = {"Host": "127.0.0.1", "Content-Type": "application/json", **headers}
    if length != "":
        hdrs["Content-Length"] = str(len(body)) if length is None else length
    head = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in hdrs.items())
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body


def exchange(srv: ScoringServer, data: bytes, timeout: float = 10.0):
    """(status, headers text, JSON body or None, seconds) of one raw request."""
    host, port = srv.server_address[:2]
    t0, buf = time.monotonic(), b""
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        try:
            while chunk := s.recv(65536):
                buf += chunk
                head, _, body = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length: *(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
        except ConnectionResetError:
            pass
    head, _, body = buf.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head else None
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    return status, head.decode("latin-1"), payload, time.monotonic() - t0


def post(srv: ScoringServer, path: str, body: bytes | str | dict, **kw):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    data = data.encode() if isinstance(data, str) else data
    return exchange(srv, raw("POST", path, data, **kw))


def assert_refused(got, status: int, words: str, within_s: float = 2.0) -> None:
    code, _, payload, seconds = got
    assert code == status, (code, payload)
    err = payload["error"]
    assert words in err["message"] and err["code"] == status and err["type"]
    assert seconds < within_s


# --- request size: prompts, tokens, bytes --------------------------------------------------
def test_prompt_count_and_token_budget_are_capped(server, model):
    many = {"prompt": [[1, 2]] * 100_000, "max_tokens": 1, "temperature": 0}
    assert_refused(post(server, "/v1/completions", many), 400, "at most 256")
    budget = 16 * model.max_model_len
    over = {"prompt": [[1] * 100] * 21, "max_tokens": 20, "echo": True}  # 21 x 120 > 2048
    assert_refused(post(server, "/v1/completions", over), 400, f"at most {budget}")
    gen = {"prompt": [1, 2], "n": 64, "max_tokens": 100}  # 2 + 6400 tokens of work
    assert_refused(post(server, "/v1/completions", gen), 400, "n x max_tokens")
    fits = {"prompt": [[1] * 100] * 16, "max_tokens": 1, "temperature": 0, "echo": True}
    assert post(server, "/v1/completions", fits)[0] == 200


def test_huge_string_prompt_is_refused_before_tokenizing(server, model, monkeypatch):
    calls = []
    encode = model.tokenizer.encode
    monkeypatch.setattr(
        model.tokenizer, "encode", lambda *a, **k: calls.append(1) or encode(*a, **k)
    )
    big = "lorem ipsum dolor " * 600_000  # 10.8 MB
    assert_refused(post(server, "/v1/completions", {"prompt": big}), 400, "context of 128")
    assert_refused(post(server, "/tokenize", {"prompt": big}), 400, "context of 128")
    cap = model.max_model_len * model.max_token_bytes * NORMALIZER_SLACK
    accented = "é" * (cap // 2 + 1)  # fewer characters than the cap, more bytes
    assert_refused(
        post(server, "/v1/completions", {"prompt": ["ok", accented]}),
        400,
        f"prompt 1 has {2 * len(accented)} bytes",
    )
    assert calls == []
    status, _, reply, _ = post(server, "/tokenize", {"prompt": "lorem ipsum"})
    assert status == 200 and reply["count"] == len(reply["tokens"]) > 0 and calls


def test_oversized_body_refused_from_its_header(model):
    with serving(model, ServeLimits(max_body_bytes=1000)) as srv:
        assert_refused(post(srv, "/v1/completions", b"", length=str(10**9)), 413, "exceeds")
        assert_refused(post(srv, "/v1/completions", {"prompt": [1] * 400}), 413, "1000")


# --- slow clients and floods -------------------------------------------------------------
def _closed_by_server(s: socket.socket, within_s: float) -> float | None:
    """Seconds until the server closes s (reading and dropping any answer), else None."""
    t0 = time.monotonic()
    s.settimeout(within_s)
    try:
        while s.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


def test_slow_loris_sockets_are_closed_and_normal_requests_still_served(model):
    limits = ServeLimits(header_timeout_s=0.5, body_timeout_s=0.5, max_queue=1)
    with serving(model, limits) as srv:
        addr = srv.server_address[:2]
        trickling = [socket.create_connection(addr) for _ in range(20)]
        for s in trickling:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        partial = socket.create_connection(addr)
        partial.sendall(raw("POST", "/v1/completions", b'{"prompt": [1,', length="100"))
        silent = socket.create_connection(addr)
        for _ in range(2):  # a byte at a time does not extend the deadline
            time.sleep(0.2)
            for s in trickling:
                with contextlib.suppress(OSError):  # the server may have closed it already
                    s.sendall(b"X")
        # the half-sent body holds a connection, not the one place in the queue
        assert post(srv, "/v1/completions", {"prompt": [1, 2], "max_tokens": 1})[0] == 200
        closed = [_closed_by_server(s, 3.0) for s in [*trickling, silent]]
        assert None not in closed and max(closed) < 2.0
        partial.settimeout(3.0)
        answer = partial.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408") and b"not received within 0.5 s" in answer
        for s in [*trickling, partial, silent]:
            s.close()
        time.sleep(0.2)
        assert srv.connections == 0


def test_connection_flood_gets_503_with_retry_after(model):
    with serving(model, ServeLimits(max_connections=4, header_timeout_s=5)) as srv:
        held = [socket.create_connection(srv.server_address[:2]) for _ in range(4)]
        time.sleep(0.3)
        status, head, payload, seconds = exchange(srv, raw("GET", "/health"))
        assert status == 503 and "Retry-After: 1" in head and seconds < 1.0
        assert "4 connections open" in payload["error"]["message"]
        for s in held:
            s.close()
        time.sleep(0.3)
        assert exchange(srv, raw("GET", "/health"))[0] == 200


# --- malformed requests ------------------------------------------------------------------
@pytest.mark.parametrize(
    "length,headers,status,words",
    [
        ("-1", {}, 400, "invalid Content-Length"),
        ("abc", {}, 400, "invalid Content-Length"),
        ("1e3", {}, 400, "invalid Content-Length"),
        ("", {}, 411, "Content-Length"),
        ("", {"Transfer_Encoding": "chunked"}, 411, "chunked"),
    ],
)
def test_bad_content_length_is_a_4xx(server, length, headers, status, words):
    got = exchange(server, raw("POST", "/v1/completions", b'{"prompt": [1]}', length, **headers))
    assert_refused(got, status, words)


def test_conflicting_content_lengths_are_refused(server):
    data = raw("POST", "/v1/completions", b'{"prompt": [1]}', length="15")
    data = data.replace(b"Content-Length: 15\r\n", b"Content-Length: 15\r\nContent-Length: 3\r\n")
    assert_refused(exchange(server, data), 400, "invalid Content-Length")


@pytest.mark.parametrize(
    "body,words",
    [
        ('{"prompt": [1, 2], "temperature": NaN}', "NaN is not a number"),
        ('{"prompt": [1, 2], "temperature": Infinity}', "Infinity is not a number"),
        ('{"prompt": [1, 2], "temperature": -Infinity}', "Infinity is not a number"),
        ('{"prompt": [1, 2], "temperature": 1e999}', "overflows"),
        ('{"prompt": [1, 2], "temperature": "hot"}', "temperature must be a number"),
        ('{"prompt": [1, 2], "temperature": true}', "temperature must be a number"),
        ('{"prompt": [1, 2], "n": true}', "n must be an integer"),
        ('{"prompt": [1, 2], "n": 2.0}', "n must be an integer"),
        ('{"prompt": [1, 2], "max_tokens": "16"}', "max_tokens must be an integer"),
        ('{"prompt": [1, 2], "logprobs": true}', "logprobs must be an integer"),
        ('{"prompt": [1, 2], "echo": "yes"}', "echo must be true or false"),
        ('{"prompt": [1, 2], "temperature": 1, "seed": "x"}', "seed must be an integer"),
        ('{"prompt": [1, 2], "temperature": 1, "seed": 1.5}', "seed must be an integer"),
        ('{"prompt": [1, 2], "temperature": 1, "seed": true}', "seed must be an integer"),
        (f'{{"prompt": [1, 2], "temperature": 1, "seed": {2**70}}}', "seed must be an integer"),
        ('{"prompt": [1, true]}', "token ids must be integers"),
        ('{"prompt": [[1, 2], 3]}', "each prompt must be"),
        ('{"prompt": "\\ud800"}', "lone surrogate"),
        ('{"prompt": [1, 2], "model": ["x"]}', "does not exist"),
    ],
)
def test_non_finite_and_mistyped_fields_are_refused(server, body, words):
    status = 404 if "model" in body else 400
    assert_refused(post(server, "/v1/completions", body), status, words)


def test_extreme_seeds_within_int64_are_accepted(server):
    for seed in (-(2**63), 2**63 - 1, 0):
        body = {"prompt": [1, 2], "temperature": 1, "seed": seed, "max_tokens": 2}
        assert post(server, "/v1/completions", body)[0] == 200


@pytest.mark.parametrize(
    "path,body,words",
    [
        ("/v1/completions", b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "deeply"),
        ("/v1/completions", b'{"prompt": "\xff\xfe"}', "not JSON"),
        ("/v1/completions", b"[1, 2]", "JSON object"),
        ("/v1/completions", b'{"prompt": [1, 2]', "not JSON"),
        ("/v1/completions", b'{"a": ' + b"9" * 5000 + b"}", "not JSON"),
        ("/detokenize", b'{"tokens": ["a"]}', "token ids must be integers"),
        ("/detokenize", b'{"tokens": [1.5]}', "token ids must be integers"),
        ("/detokenize", b'{"tokens": [1000000000000]}', "token ids must be integers"),
        ("/detokenize", b'{"tokens": [-1]}', "token ids must be integers"),
        ("/detokenize", b'{"tokens": "abc"}', "non-empty list"),
        ("/tokenize", b'{"prompt": 5}', "string prompt"),
        ("/tokenize", b'{"prompt": "x", "add_special_tokens": "no"}', "true or false"),
    ],
)
def test_malformed_json_and_bad_token_ids_are_a_400(server, path, body, words):
    assert_refused(post(server, path, body), 400, words)


def test_detokenize_still_answers_good_ids(server, model):
    ids = model.tokenizer.encode("hello world", add_special_tokens=False)
    status, _, reply, _ = post(server, "/detokenize", {"tokens": ids})
    assert status == 200 and reply["prompt"] == model.tokenizer.decode(ids)
    assert post(server, "/detokenize", {"tokens": []})[2] == {"prompt": ""}


def test_unrouted_methods_and_paths_are_4xx_json(server):
    assert_refused(exchange(server, raw("PUT", "/v1/completions", b"{}")), 405, "not allowed")
    assert_refused(exchange(server, raw("GET", "/v1/completions")), 405, "takes POST")
    assert_refused(exchange(server, raw("POST", "/health", b"{}")), 405, "takes GET")
    assert_refused(exchange(server, raw("GET", "/nope")), 404, "no route")
    status, head, payload, _ = exchange(server, raw("HEAD", "/v1/models"))
    assert status == 405 and payload is None  # HEAD: no body
    status, _, payload, _ = exchange(server, b"GARBAGE\r\n\r\n")
    assert status == 400 and payload["error"]["code"] == 400


# --- abandoned work and a busy model -----------------------------------------------------
@contextmanager
def slow_batches(model, monkeypatch, seconds: float) -> Iterator[list[int]]:
    """Each forward batch takes at least `seconds`; yields the running count of batches."""
    calls: list[int] = []
    real = model._score_batch

    def slow(seqs, k):
        calls.append(len(seqs))
        time.sleep(seconds)
        return real(seqs, k)

    monkeypatch.setattr(model, "_score_batch", slow)
    yield calls


def _long_request(prompts: int) -> bytes:
    body = {
        "prompt": [[1, 2, 3, 4]] * prompts,
        "echo": True,
        "max_tokens": 1,
        "logprobs": 1,
        "temperature": 0,
    }
    return raw("POST", "/v1/completions", json.dumps(body).encode())


def test_work_of_a_client_that_left_is_dropped(model, monkeypatch):
    limits = ServeLimits(max_prompts=400, max_request_tokens=10**6)
    with serving(model, limits) as srv, slow_batches(model, monkeypatch, 0.02) as calls:
        s = socket.create_connection(srv.server_address[:2])
        s.sendall(_long_request(400))  # 100 batches of 4: about 2 s of work
        time.sleep(0.4)
        assert calls and srv.health()["status"] == "busy"
        s.close()
        t0 = time.monotonic()
        while srv.in_flight and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        freed = time.monotonic() - t0
        done = len(calls)
        time.sleep(0.3)
        assert freed < 1.0 and len(calls) == done < 60  # stopped, far short of 100 batches
        assert srv.health()["status"] == "idle"
        # the half-sent body holds a connection, not the one place in the queue
        assert post(srv, "/v1/completions", {"prompt": [1, 2], "max_tokens": 1})[0] == 200


def test_health_says_busy_and_a_full_queue_gets_503(model, monkeypatch):
    with serving(model, ServeLimits(max_queue=1)) as srv, slow_batches(model, monkeypatch, 0.1):
        result = {}
        worker = threading.Thread(
            target=lambda: result.update(long=exchange(srv, _long_request(16)))
        )
        worker.start()
        time.sleep(0.15)
        status, _, health, seconds = exchange(srv, raw("GET", "/health"))
        assert status == 200 and seconds < 0.5
        assert health["status"] == "busy" and health["requests"] == 1
        assert exchange(srv, raw("GET", "/load"))[2] == {"server_load": 1}
        status, head, payload, _ = post(srv, "/v1/completions", {"prompt": [1, 2]})
        assert status == 503 and "Retry-After: 1" in head and "busy" in payload["error"]["message"]
        worker.join(timeout=10)
        assert result["long"][0] == 200
        assert exchange(srv, raw("GET", "/health"))[2]["status"] == "idle"


def test_model_turns_are_first_come_first_served_and_cancellable():
    turns, order, gate = ModelTurns(), [], threading.Event()

    def hold():
        with turns.turn():
            gate.wait(5)

    def take(name, stop=lambda: False):
        try:
            with turns.turn(stop):
                order.append(name)
        except Cancelled:
            order.append(f"{name} cancelled")

    first = threading.Thread(target=hold)
    first.start()
    while not turns.busy:
        time.sleep(0.005)
    leave = threading.Event()
    waiters = [
        threading.Thread(target=take, args=("a",)),
        threading.Thread(target=take, args=("b", leave.is_set)),
        threading.Thread(target=take, args=("c",)),
    ]
    for i, w in enumerate(waiters, 1):
        w.start()
        t0 = time.monotonic()
        while turns.queue < i and time.monotonic() - t0 < 5:  # queued before the next one
            time.sleep(0.005)
    assert turns.queue == 3 and turns.busy
    leave.set()
    time.sleep(0.2)
    assert order == ["b cancelled"] and turns.queue == 2
    gate.set()
    for t in [first, *waiters]:
        t.join(5)
    assert order == ["b cancelled", "a", "c"] and not turns.busy


def test_generation_stops_at_the_next_token_once_the_client_left(model):
    polls = []

    def stop_after_five() -> bool:
        polls.append(1)
        return len(polls) > 5

    torch.manual_seed(0)
    with pytest.raises(Cancelled):
        model.sample(
            [1, 2, 3], max_tokens=100, n=2, temperature=1.0, seed=1, should_stop=stop_after_five
        )
    assert len(polls) <= 8  # a few polls around the turn, one per token: not 100
    assert len(model.sample([1, 2, 3], max_tokens=5, n=2, temperature=1.0, seed=1)) == 2
