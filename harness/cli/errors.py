"""Turn the library's own error types into one-line CLI errors (no tracebacks for bad input)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from canaries.canary_set import CanarySetError
from canaries.corpus import CorpusError
from canaries.files import OutputError
from canaries.generators import GeneratorError
from canaries.wordlist import WordlistError
from harness.backends import BackendError, ModelSpecError
from harness.cache import CacheError
from harness.protocol.beacon import BeaconError
from harness.protocol.local_tsa import LocalTSAError
from harness.protocol.pool import ProtocolError
from harness.protocol.timestamp import TimestampError
from harness.registry import TaskError
from harness.results import ReportError
from harness.stats import PlanViolation
from harness.stats.scores import ScoreError

USER_ERRORS: tuple[type[Exception], ...] = (
    CanarySetError,
    CorpusError,
    OutputError,
    GeneratorError,
    WordlistError,
    BackendError,
    CacheError,
    ModelSpecError,
    TaskError,
    ReportError,
    ScoreError,
    PlanViolation,
    ProtocolError,
    BeaconError,
    TimestampError,
    LocalTSAError,
    FileNotFoundError,
)
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Decorator: library errors from bad input become `Error: <message>` and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            raise click.ClickException(str(e)) from e

    return wrapper  # type: ignore[return-value]


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`key=value` pairs from repeated --option flags, values coerced to int/float/bool/tuple."""
    from harness.backends.spec import _coerce

    out: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--option")
        out[key] = tuple(_coerce(v) for v in value.split("+")) if "+" in value else _coerce(value)
    return out
