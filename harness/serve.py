"""`tdp serve`: an OpenAI-compatible completions endpoint over a transformers model.

Lets a model owner grant black-box audit access (log-probs and generations) without
releasing weights. Routes as vLLM's OpenAI server: `GET /v1/models`, `POST /v1/completions`
(semantics in harness/completions.py), `POST /tokenize`, `POST /detokenize`, `GET /health`.
Model entries in `/v1/models` carry a `tdp` object (the model identity: digests of the stored
weight tensors and of the tokenizer's canonical content, see harness/backends/identity.py; dtype,
revision) so a client can check it holds the right tokenizer and record what it audited.
Binds 127.0.0.1 unless told otherwise; `api_key_env` makes it require a Bearer key.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.backends.base import BackendError
from harness.completions import RequestError, ScoringModel, completions, models_card

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 << 20


class ScoringHandler(BaseHTTPRequestHandler):
    server: ScoringServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        srv, path = self.server, self.path.split("?", 1)[0].rstrip("/")
        try:
            if path == "/health":
                return self._send(200, {})
            if not srv.authorized(self.headers.get("Authorization", "")):
                raise RequestError("invalid or missing API key", 401)
            routes = {
                ("GET", "/v1/models"): lambda b: models_card(srv.sm, srv.created),
                ("POST", "/v1/completions"): lambda b: completions(b, srv.sm),
                ("POST", "/tokenize"): lambda b: _tokenize(b, srv.sm),
                ("POST", "/detokenize"): lambda b: {
                    "prompt": srv.sm.tokenizer.decode(b.get("tokens") or [])
                },
            }
            handler = routes.get((method, path))
            if handler is None:
                raise RequestError(f"no route {method} {path}", 404)
            self._send(200, handler(self._body() if method == "POST" else {}))
        except RequestError as e:
            self._send(e.status, _error(str(e), e.status))
        except Exception as e:  # a server must answer, not die; the client sees a 500
            log.exception("request failed")
            self._send(500, _error(f"internal error: {type(e).__name__}: {e}", 500))

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise RequestError("request body too large", 413)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as e:
            raise RequestError(f"body is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise RequestError("body must be a JSON object")
        return body

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _tokenize(body: dict[str, Any], sm: ScoringModel) -> dict[str, Any]:
    if not isinstance(body.get("prompt"), str):
        raise RequestError("tokenize needs a string prompt")
    ids = list(
        sm.tokenizer.encode(
            body["prompt"], add_special_tokens=bool(body.get("add_special_tokens", True))
        )
    )
    return {"count": len(ids), "max_model_len": sm.max_model_len, "tokens": ids, "token_strs": None}


def _error(message: str, status: int) -> dict[str, Any]:
    kind = {401: "AuthenticationError", 404: "NotFoundError"}.get(
        status, "BadRequestError" if status < 500 else "InternalServerError"
    )
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


class ScoringServer(ThreadingHTTPServer):
    """A threading HTTP server holding one ScoringModel; optional Bearer-key check."""

    daemon_threads = True

    def __init__(
        self,
        sm: ScoringModel,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        handler: type[BaseHTTPRequestHandler] | None = None,
    ) -> None:
        super().__init__((host, port), handler or ScoringHandler)
        self.sm, self.created, self._key = sm, int(time.time()), api_key

    def authorized(self, header: str) -> bool:
        if not self._key:
            return True
        return hmac.compare_digest(header.encode(), f"Bearer {self._key}".encode())

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


def build_server(
    model_spec: str,
    served_name: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key_env: str | None = None,
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
        return ScoringServer(model, host, port, key)
    except OSError as e:
        raise BackendError(f"cannot listen on {host}:{port}: {e}") from e
