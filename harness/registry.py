"""Task plugins: discovered through the `tdp.tasks` entry-point group, loaded on first use."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

log = logging.getLogger(__name__)
GROUP = "tdp.tasks"


class TaskError(LookupError):
    """A task name is unknown or its plugin fails to load."""


@dataclass(frozen=True)
class Task:
    """A task plugin: a name, a config dataclass, and a function that runs one audit."""

    name: str
    description: str
    config_type: type
    run: Callable[..., Any]  # (AuditContext, config) -> AuditResult
    #: False for tasks on labelled data (benchmarks): they run without a canary set
    needs_canaries: bool = True


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def task_names() -> list[str]:
    return sorted(_entry_points())


def get_task(name: str) -> Task:
    """Load a task by name; unknown names get a 'did you mean'."""
    eps = _entry_points()
    if name not in eps:
        close = difflib.get_close_matches(name, list(eps), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TaskError(f"unknown task {name!r}.{hint} Known tasks: {', '.join(sorted(eps))}")
    try:
        task = eps[name].load()
    except Exception as e:  # a broken third-party plugin must not hide the others
        raise TaskError(f"task {name!r} failed to load from {eps[name].value}: {e}") from e
    if not isinstance(task, Task):
        raise TaskError(f"entry point {name!r} -> {eps[name].value} is not a harness.registry.Task")
    return task


def list_tasks() -> list[tuple[str, str]]:
    """(name, description) for every installed task; broken plugins are listed with the error."""
    out = []
    for name in task_names():
        try:
            out.append((name, get_task(name).description))
        except TaskError as e:
            log.warning("%s", e)
            out.append((name, f"(failed to load: {e})"))
    return out
