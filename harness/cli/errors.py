"""Turn the library's own error types into one-line CLI errors (no tracebacks for bad input)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from canaries.canary_set import CanarySetError
from canaries.corpus import CorpusError
from canaries.files import OutputError, error_line
from canaries.generators import GeneratorError
from canaries.inject import InjectError
from canaries.wordlist import WordlistError
from harness.backends import BackendError, ModelSpecError
from harness.cache import CacheError
from harness.evidence.bundle import BundleError
from harness.evidence.custody import CustodyError
from harness.evidence.pdf import PdfError
from harness.evidence.signing import SigningError
from harness.leaderboard.config import LeaderboardError
from harness.mi.data import MIDataError
from harness.mi.shadow import ShadowError
from harness.protocol.beacon import BeaconError
from harness.protocol.local_tsa import LocalTSAError
from harness.protocol.pool import ProtocolError
from harness.protocol.timestamp import TimestampError
from harness.registry import TaskError
from harness.results import ReportError
from harness.stats import PlanViolation
from harness.stats.scores import ScoreError
from harness.train.pol import PoLError

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
    InjectError,
    BundleError,
    CustodyError,
    SigningError,
    PdfError,
    PoLError,
    LeaderboardError,
    MIDataError,
    ShadowError,
    # the file system's own verdicts on a path the user gave: one line, naming the path
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Decorator: library errors from bad input become `Error: <message>` and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            raise click.ClickException(error_line(e)) from e

    return wrapper  # type: ignore[return-value]


def hex_seed(text: str | None, min_bytes: int = 16, option: str = "--seed") -> bytes | None:
    """A seed given in hex on the command line, at least `min_bytes` long (None if not given)."""
    if text is None:
        return None
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not hexadecimal", param_hint=option) from None
    if len(seed) < min_bytes:
        raise click.BadParameter(
            f"{len(seed)} bytes is too short; give at least {min_bytes} bytes "
            f"({2 * min_bytes} hex digits)",
            param_hint=option,
        )
    return seed


def one_line_warnings() -> None:
    """Show Python warnings (corrupt cache files, loose secret modes) as `Warning: ...` lines."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        click.echo(f"Warning: {message}", err=True)

    warnings.showwarning = show


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
