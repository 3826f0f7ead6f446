"""Run a function on one item at a time in a child process with a hard time limit per item.

Parsers and filters can be super-linear on hostile input (html.parser on `<a<a<a...`, datatrove's
Gopher filters on long runs of `<` or `&`) and C parsers can crash; neither may stall or kill a
whole batch. The child is started once and reused; an item that runs past its limit gets the
child killed (SIGKILL: a hung regex or C call cannot be interrupted any other way) and the next
item a fresh child. Modelled on datatrove's own `ExtractorSandbox`, which does the same for
its extractors. The function and items must be picklable where `fork` is unavailable.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Failed:
    """An item the child did not finish: it ran out of time, crashed the child, or raised."""

    kind: str  # "timeout" | "crash" | "error"
    message: str
    seconds: float


def _serve(conn: Any, fn: Callable[[Any], Any], other_end: Any = None) -> None:
    if other_end is not None:  # a forked child holds a copy of the parent's end: drop it, so
        other_end.close()  # that the parent's death (even by SIGKILL) ends this loop with EOF
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        try:
            result: Any = ("ok", fn(item))
        except Exception as e:  # reported per item; the child keeps serving
            result = ("error", f"{type(e).__name__}: {e}")
        conn.send(result)


def _context() -> Any:
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else methods[0])


class Sandbox:
    """`sandbox(item)` returns `fn(item)` or a `Failed`; `limit` seconds per item (None: no
    child at all, `fn` runs in this process, for callers that trust their input)."""

    def __init__(self, fn: Callable[[Any], Any], limit: float | None) -> None:
        if limit is not None and not limit > 0:
            raise ValueError(f"time limit must be > 0 seconds, got {limit}")
        self.fn, self.limit = fn, limit
        self._proc: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        ctx = _context()
        parent, child = ctx.Pipe()
        other = parent if ctx.get_start_method() == "fork" else None
        self._proc = ctx.Process(target=_serve, args=(child, self.fn, other), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join()
            self._conn.close()
        self._proc = self._conn = None

    def __call__(self, item: Any) -> Any:
        if self.limit is None:
            return self.fn(item)
        if self._proc is None or not self._proc.is_alive():
            self._kill()
            self._start()
        t0 = time.monotonic()
        try:
            self._conn.send(item)
            ready = self._conn.poll(self.limit)
            status, value = self._conn.recv() if ready else ("timeout", None)
        except (EOFError, OSError):
            status, value = "crash", None
        took = time.monotonic() - t0
        if status == "ok":
            return value
        if status == "error":
            return Failed("error", value, took)
        proc = self._proc
        self._kill()
        if status == "timeout":
            return Failed("timeout", f"took over {self.limit:g} s; stopped", took)
        code = proc.exitcode
        why = f" (signal {-code})" if code is not None and code < 0 else ""
        return Failed("crash", f"the worker process died{why}", took)

    def close(self) -> None:
        """Stop the child (also done at exit: it is a daemon process)."""
        self._kill()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Failed", "Sandbox"]
