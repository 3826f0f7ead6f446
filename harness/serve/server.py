"""`tdp serve`: an OpenAI-compatible completions endpoint over a transformers model.

Lets a model owner grant black-box audit access (log-probs and generations) without
releasing weights. Routes as vLLM's OpenAI server: `GET /v1/models`, `POST /v1/completions`
(semantics in harness/serve/completions.py), `POST /tokenize`, `POST /detokenize`, `GET /health`,
`GET /load`. Model entries in `/v1/models` carry a `tdp` object (the model identity: digests of
the stored weight tensors and of the tokenizer's canonical content, see
harness/backends/identity.py; dtype, revision) so a client can check it holds the right
tokenizer and record what it audited.
Binds 127.0.0.1 unless told otherwise; `api_key_env` makes it require a Bearer key.

Hostile or slow clients are bounded (harness/serve/limits.py): a wall-clock deadline for a
request's headers and another for its body, scaled to its declared size (slow-loris sockets
are closed, not held; a slow body holds a connection, never a place in the model queue), a cap
on connections and on POSTs in flight (503 with Retry-After beyond it, as uvicorn's
limit_concurrency answers), limits on body size, prompts and tokens per request, and model
work whose client has hung up is dropped at the next batch or generated token. Every refusal
is a 4xx (or 503 when busy) in OpenAI's error shape. `/health` answers 200 while the server
runs, as vLLM's does (load balancers read non-2xx as dead, and a busy model is not dead), with
`{"status": "idle"|"busy", ...}` in the body; `/load` is vLLM's `{"server_load": n}`.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import math
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.backends.base import BackendError
from harness.serve.completions import (
    Cancelled,
    RequestError,
    ScoringModel,
    completions,
    detokenize,
    models_card,
    tokenize,
)
from harness.serve.limits import ServeLimits, content_length, parse_json_object

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1
_ERROR_TYPES = {
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    408: "RequestTimeoutError",
    413: "RequestTooLargeError",
    503: "ServiceUnavailableError",
}


def _error(message: str, status: int) -> dict[str, Any]:
    """OpenAI's (and vLLM's) error body."""
    kind = _ERROR_TYPES.get(status, "BadRequestError" if status < 500 else "InternalServerError")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


class ServerBusy(RequestError):
    """Too much in flight; the client should retry after RETRY_AFTER_S (503, as uvicorn's
    limit_concurrency answers and the openai backend retries)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 503)


def _encode_response(status: int, payload: dict[str, Any], close: bool, retry: bool) -> bytes:
    data = json.dumps(payload).encode()
    head = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
    ]
    if retry:
        head.append(f"Retry-After: {RETRY_AFTER_S}")
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


class _DeadlineReader(io.RawIOBase):
    """Socket reads bounded by one wall-clock deadline: trickled bytes cannot extend it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock, self.deadline = sock, math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("read deadline passed")
        self._sock.settimeout(min(left, 3600.0))
        return self._sock.recv_into(buf)


def client_gone(sock: socket.socket) -> bool:
    """True once the peer has closed or reset the connection (EOF or an error on the socket).

    Costs one poll() and at most one peek; a client that half-closes its side after sending
    the request counts as gone too.
    """
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        events = poller.poll(0)
        if not events:
            return False
        if events[0][1] & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            return True
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


class ScoringHandler(BaseHTTPRequestHandler):
    server: ScoringServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain makefile() reader; its reference would delay the close
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """Headers (or the idle wait for the next request) within header_timeout_s."""
        self._reader.deadline = time.monotonic() + self.server.limits.header_timeout_s
        super().handle_one_request()

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch("POST")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (bad request line, headers, method) as JSON."""
        if code == HTTPStatus.NOT_IMPLEMENTED:  # a method we do not route is the client's error
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command!r} not allowed"
        self._send(int(code), _error(message or HTTPStatus(code).phrase, int(code)))

    def _dispatch(self, method: str) -> None:
        srv, path = self.server, self.path.split("?", 1)[0].rstrip("/")
        try:
            routes = self._routes()
            public = path in ("/health", "/load")  # unauthenticated, as in vLLM
            if not public and not srv.authorized(self.headers.get("Authorization", "")):
                raise RequestError("invalid or missing API key", 401)
            if path not in routes:
                raise RequestError(f"no route {method} {path[:100]}", 404)
            want, handler = routes[path]
            if method != want:
                raise RequestError(f"{path} takes {want}, not {method}", 405)
            if method == "GET":
                if self.headers.get("Content-Length", "").strip() not in ("", "0"):
                    self.close_connection = True  # a body we do not read must not be parsed next
                return self._send(200, handler({}))
            raw = self._body()  # before admission: a slow body holds a connection, not a slot
            with srv.admitted():
                reply = handler(parse_json_object(raw))
            self._send(200, reply)
        except Cancelled:
            log.info("%s: client left; its request was dropped", self.address_string())
            self.close_connection = True
        except ServerBusy as e:
            self._send(e.status, _error(str(e), e.status), retry=True)
        except RequestError as e:
            self._send(e.status, _error(str(e), e.status))
        except Exception as e:  # a server must answer, not die; the client sees a 500
            log.exception("request failed")
            self._send(500, _error(f"internal error: {type(e).__name__}: {e}", 500))

    def _routes(self) -> dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]]:
        srv, sm, limits = self.server, self.server.sm, self.server.limits
        gone = self._client_gone
        return {
            "/health": ("GET", lambda b: srv.health()),
            "/load": ("GET", lambda b: srv.load()),
            "/v1/models": ("GET", lambda b: models_card(sm, srv.created)),
            "/v1/completions": ("POST", lambda b: completions(b, sm, limits, gone)),
            "/tokenize": ("POST", lambda b: tokenize(b, sm)),
            "/detokenize": ("POST", lambda b: detokenize(b, sm, limits)),
        }

    def _client_gone(self) -> bool:
        return client_gone(self.connection)

    def _body(self) -> bytes:
        """The raw body: declared length checked first, then read by its deadline."""
        limits = self.server.limits
        length = content_length(self.headers, limits.max_body_bytes)
        allowed = limits.body_deadline_s(length)
        self._reader.deadline = time.monotonic() + allowed
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            raise RequestError(
                f"request body of {length} bytes not received within {allowed:.3g} s", 408
            ) from None
        if len(raw) < length:
            raise RequestError("connection closed before the whole body arrived")
        return raw

    def _send(self, status: int, payload: dict[str, Any], retry: bool = False) -> None:
        """Write one response; after an error the connection closes (its body may be unread)."""
        if status >= 400:
            self.close_connection = True
        data = _encode_response(status, payload, self.close_connection, retry)
        if self.command == "HEAD":
            data = data.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
        self.log_request(status, len(data))
        try:
            self.connection.settimeout(self.server.limits.send_timeout_s)
            self.wfile.write(data)
        except OSError as e:  # client gone or not reading: nothing left to tell it
            log.info("%s: answer not delivered: %s", self.address_string(), e)
            self.close_connection = True


class ScoringServer(ThreadingHTTPServer):
    """A threading HTTP server holding one ScoringModel; optional Bearer-key check."""

    daemon_threads = True
    block_on_close = False  # never wait on a stuck client at shutdown
    request_queue_size = 128

    def __init__(
        self,
        sm: ScoringModel,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        handler: type[BaseHTTPRequestHandler] | None = None,
        limits: ServeLimits | None = None,
    ) -> None:
        super().__init__((host, port), handler or ScoringHandler)
        self.sm, self.created, self._key = sm, int(time.time()), api_key
        self.limits = limits or ServeLimits()
        self._counts = threading.Lock()
        self.connections = self.in_flight = 0

    def authorized(self, header: str) -> bool:
        if not self._key:
            return True
        return hmac.compare_digest(header.encode(), f"Bearer {self._key}".encode())

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def health(self) -> dict[str, Any]:
        return {
            "status": "busy" if self.in_flight or self.sm.turns.busy else "idle",
            "requests": self.in_flight,
            "waiting_for_model": self.sm.turns.queue,
            "max_requests": self.limits.max_queue,
            "connections": self.connections,
        }

    def load(self) -> dict[str, Any]:
        return {"server_load": self.in_flight}

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """A POST slot, or 503 when max_queue requests are already in flight."""
        with self._counts:
            if self.in_flight >= self.limits.max_queue:
                raise ServerBusy(f"server busy: {self.in_flight} requests in flight; retry later")
            self.in_flight += 1
        try:
            yield
        finally:
            with self._counts:
                self.in_flight -= 1

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection up to max_connections; beyond that an immediate 503."""
        with self._counts:
            full = self.connections >= self.limits.max_connections
            if not full:
                self.connections += 1
        if not full:
            try:
                return super().process_request(request, client_address)
            except BaseException:  # no thread started: nothing will count this one out
                with self._counts:
                    self.connections -= 1
                raise
        msg = f"server busy: {self.connections} connections open; retry later"
        try:
            request.settimeout(1.0)
            request.sendall(_encode_response(503, _error(msg, 503), close=True, retry=True))
        except OSError:
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._counts:
                self.connections -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client dropping its connection is routine; anything else is logged in full."""
        if isinstance(sys.exc_info()[1], OSError):
            log.debug("%s: connection error", client_address, exc_info=True)
        else:
            log.exception("error serving %s", client_address)


def build_server(
    model_spec: str,
    served_name: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key_env: str | None = None,
    limits: ServeLimits | None = None,
) -> ScoringServer:
    """Load an hf model and bind a server to it (port 0 picks a free port)."""
    from harness.backends import BACKENDS, load_backend, parse_model_spec

    spec = parse_model_spec(model_spec, tuple(BACKENDS))
    if spec.backend != "hf":
        raise BackendError(f"tdp serve serves hf models; got backend {spec.backend!r}")
    key = None
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise BackendError(
                f"--api-key-env {api_key_env}: that environment variable is empty or unset"
            )
    model = ScoringModel(load_backend(spec), served_name or spec.model)
    try:
        return ScoringServer(model, host, port, key, limits=limits)
    except OSError as e:
        raise BackendError(f"cannot listen on {host}:{port}: {e}") from e
