"""A small JSON-over-HTTP client (standard library) with retries and exponential backoff.

Retries connection errors, timeouts, HTTP 429 and 5xx (honouring Retry-After up to a cap);
other HTTP errors fail at once with the server's own message. The API key is read from an
environment variable at construction, sent as a Bearer token, and kept out of every message.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from harness.backends.base import BackendError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


def _strip_userinfo(url: str) -> str:
    p = urlsplit(url)
    host = p.hostname or ""
    return urlunsplit((p.scheme, f"{host}:{p.port}" if p.port else host, p.path, "", ""))


class JsonClient:
    """POST/GET JSON to one base URL; errors are BackendError naming the URL, never the key."""

    def __init__(
        self,
        base_url: str,
        api_key_env: str | None,
        timeout_s: float = 300.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = _strip_userinfo(self.base_url)
        root = urlsplit(self.base_url)
        self.root_url = urlunsplit((root.scheme, root.netloc, "", "", ""))
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, int(max_retries), backoff_s
        self.api_key_env = api_key_env
        self.__key = os.environ.get(api_key_env) if api_key_env else None

    def __repr__(self) -> str:
        return f"JsonClient({self.shown_url!r}, api_key_env={self.api_key_env!r})"

    def get(self, path: str) -> dict[str, Any]:
        return self._request("GET", self.base_url + path, None)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", self.base_url + path, body)

    def post_optional(
        self, path: str, body: dict[str, Any], root: bool = False
    ) -> dict[str, Any] | None:
        """POST where the endpoint may not exist (vLLM-only routes): None on a 4xx other than
        auth/throttling, or 501."""
        url = (self.root_url if root else self.base_url) + path
        try:
            return self._request("POST", url, body, optional=True)
        except _Missing:
            return None

    def _redact(self, text: str) -> str:
        return text.replace(self.__key, "***") if self.__key else text

    def _request(
        self, method: str, url: str, body: dict[str, Any] | None, optional: bool = False
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.__key:
            headers["Authorization"] = f"Bearer {self.__key}"
        shown = _strip_userinfo(url)
        last, retry_after = "", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, retry_after))
            retry_after = None
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return self._decode(resp.read(), shown)
            except urllib.error.HTTPError as e:
                detail = self._redact(_error_message(e))
                absent = e.code == 501 or (e.code < 500 and e.code not in (401, 403, 408, 429))
                if optional and absent:
                    raise _Missing() from None
                if e.code in (401, 403):
                    src = (
                        f"${self.api_key_env}"
                        if self.__key
                        else f"no key (${self.api_key_env} is unset)"
                    )
                    raise BackendError(
                        f"{shown}: HTTP {e.code}, the server refused {src}: {detail}"
                    ) from None
                if e.code not in RETRY_STATUS:
                    raise BackendError(f"{shown}: HTTP {e.code}: {detail}") from None
                last, retry_after = f"HTTP {e.code}: {detail}", e.headers.get("Retry-After")
            except (
                urllib.error.URLError,
                http.client.HTTPException,
                ConnectionError,
                TimeoutError,
            ) as e:
                reason = getattr(e, "reason", e)
                last = self._redact(f"{type(reason).__name__}: {reason}")
            log.info(
                "%s %s failed (%s); attempt %d of %d",
                method,
                shown,
                last,
                attempt + 1,
                self.max_retries + 1,
            )
        raise BackendError(
            f"cannot get an answer from the OpenAI-compatible server at {self.shown_url} "
            f"after {self.max_retries + 1} attempts: {last}"
        )

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(float(retry_after), MAX_RETRY_AFTER_S)
            except ValueError:
                pass
        return self.backoff_s * (2 ** (attempt - 1))

    def _decode(self, raw: bytes, shown: str) -> dict[str, Any]:
        try:
            out = json.loads(raw)
        except ValueError as e:
            raise BackendError(f"{shown}: the server's answer is not JSON: {raw[:200]!r}") from e
        if not isinstance(out, dict):
            raise BackendError(f"{shown}: expected a JSON object, got {type(out).__name__}")
        return out


class _Missing(Exception):
    """The optional endpoint does not exist on this server."""


def _error_message(e: urllib.error.HTTPError) -> str:
    try:
        raw = e.read()
    except OSError:
        return str(e.reason)
    try:
        err = json.loads(raw).get("error", {})
        msg = err.get("message") if isinstance(err, dict) else err
        return str(msg or raw[:300].decode("utf-8", "replace"))
    except (ValueError, AttributeError):
        return raw[:300].decode("utf-8", "replace")
