"""The leaderboard config (TOML): models (any spec; series of checkpoints), tasks with options,
the canary sets and data sets they use, and optionally how to build the models first.

Paths are read as written: relative paths are relative to the directory `tdp` runs in (the
repository root for the configs in configs/), as everywhere else on the command line.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_VERSION = 1
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class LeaderboardError(ValueError):
    """A leaderboard config, folder or file is malformed or inconsistent."""


@dataclass(frozen=True)
class ModelEntry:
    """One row of the leaderboard."""

    name: str
    spec: str
    reference: str | None = None
    #: series name -> this model's x in it (e.g. {"repetitions": 8, "epochs": 6})
    series: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesEntry:
    name: str
    x_label: str


@dataclass(frozen=True)
class TaskEntry:
    """One column: a task with its options, on a canary set or a data set."""

    name: str
    task: str
    canaries: str | None = None  # a key of [canaries]
    dataset: str | None = None  # a key of [datasets]
    options: dict[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] = ()  # only these models (default: every model)


@dataclass(frozen=True)
class LeaderboardConfig:
    title: str
    path: str
    sha256: str
    text: str
    models: tuple[ModelEntry, ...]
    tasks: tuple[TaskEntry, ...]
    series: tuple[SeriesEntry, ...] = ()
    canaries: dict[str, str] = field(default_factory=dict)  # name -> canary file
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> task options
    build: dict[str, Any] | None = None  # the [build] table, read by harness.leaderboard.build

    def task_options(self, t: TaskEntry) -> dict[str, Any]:
        """A task's options with its data set's (the data set's name as `name`)."""
        if t.dataset is None:
            return dict(t.options)
        return {"name": t.dataset, **self.datasets[t.dataset], **t.options}


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise LeaderboardError(f"{what} {value!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return value


def _table(d: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = d.get(key, default)
    if not isinstance(value, kind):
        raise LeaderboardError(f"{key!r} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _unknown(d: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = set(d) - allowed
    if extra:
        raise LeaderboardError(
            f"{where}: unknown keys {sorted(extra)} (allowed: {sorted(allowed)})"
        )


def _model(d: Any, default_ref: str | None, series: set[str]) -> ModelEntry:
    if not isinstance(d, dict):
        raise LeaderboardError("each [[models]] entry must be a table")
    _unknown(d, {"name", "spec", "reference", "series"}, "[[models]]")
    name = _name(d.get("name"), "model name")
    if not isinstance(d.get("spec"), str) or not d["spec"].strip():
        raise LeaderboardError(f"model {name!r} needs a spec (e.g. 'hf:path/or/id@revision')")
    xs = _table(d, "series", dict, {})
    for s, x in xs.items():
        if s not in series:
            raise LeaderboardError(f"model {name!r}: series {s!r} is not declared in [[series]]")
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise LeaderboardError(f"model {name!r}: x in series {s!r} must be a number")
    ref = d.get("reference", default_ref)
    if ref is not None and not isinstance(ref, str):
        raise LeaderboardError(f"model {name!r}: reference must be a model spec string")
    return ModelEntry(name, d["spec"].strip(), ref or None, {s: float(x) for s, x in xs.items()})


def _task(
    d: Any, canaries: dict[str, str], datasets: dict[str, Any], models: set[str]
) -> TaskEntry:
    if not isinstance(d, dict):
        raise LeaderboardError("each [[tasks]] entry must be a table")
    _unknown(d, {"name", "task", "canaries", "dataset", "options", "models"}, "[[tasks]]")
    name = _name(d.get("name", d.get("task")), "task name")
    if not isinstance(d.get("task"), str):
        raise LeaderboardError(f"task {name!r} needs `task` (a task plugin name, see `tdp tasks`)")
    refs = (("canaries", "canaries", canaries), ("dataset", "datasets", datasets))
    for key, table, known in refs:
        if d.get(key) is not None and d[key] not in known:
            raise LeaderboardError(f"task {name!r}: {key} {d[key]!r} is not in [{table}] "
                                   f"(known: {sorted(known)})")
    only = tuple(_table(d, "models", list, []))
    for m in only:
        if m not in models:
            raise LeaderboardError(f"task {name!r}: model {m!r} is not in [[models]]")
    return TaskEntry(name, d["task"], d.get("canaries"), d.get("dataset"),
                     dict(_table(d, "options", dict, {})), only)


def parse_config(text: str, path: str = "<config>") -> LeaderboardConfig:
    """Parse and check a config; every inconsistency is a one-line LeaderboardError."""
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LeaderboardError(f"{path}: not valid TOML ({e})") from e
    _unknown(d, {"title", "config_version", "reference", "series", "models", "tasks", "canaries",
                 "datasets", "build"}, path)
    if d.get("config_version", CONFIG_VERSION) != CONFIG_VERSION:
        raise LeaderboardError(f"{path}: config_version {d['config_version']!r} unsupported "
                               f"(this harness reads {CONFIG_VERSION})")
    series = tuple(SeriesEntry(_name(s.get("name"), "series name"), str(s.get("x_label", "x")))
                   for s in _table(d, "series", list, []))
    canaries = {_name(k, "canary set name"): str(v.get("path") if isinstance(v, dict) else v)
                for k, v in _table(d, "canaries", dict, {}).items()}
    datasets = {_name(k, "data set name"): dict(v)
                for k, v in _table(d, "datasets", dict, {}).items()}
    models = tuple(_model(m, d.get("reference"), {s.name for s in series})
                   for m in _table(d, "models", list, []))
    tasks = tuple(_task(t, canaries, datasets, {m.name for m in models})
                  for t in _table(d, "tasks", list, []))
    for what, names in (("model", [m.name for m in models]), ("task", [t.name for t in tasks])):
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise LeaderboardError(f"{path}: {what} names must be unique ({sorted(dup)} repeat)")
    if not models or not tasks:
        raise LeaderboardError(f"{path}: a leaderboard needs at least one [[models]] and one "
                               "[[tasks]] entry")
    build = d.get("build")
    if build is not None and not isinstance(build, dict):
        raise LeaderboardError(f"{path}: [build] must be a table")
    return LeaderboardConfig(
        title=str(d.get("title", Path(path).stem)),
        path=path,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        text=text,
        models=models,
        tasks=tasks,
        series=series,
        canaries=canaries,
        datasets=datasets,
        build=build,
    )


def load_config(path: str | Path) -> LeaderboardConfig:
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except FileNotFoundError:
        raise LeaderboardError(f"{p}: no such config file") from None
    except IsADirectoryError:
        raise LeaderboardError(f"{p}: is a folder, not a config file") from None
    except UnicodeDecodeError as e:
        raise LeaderboardError(f"{p}: not UTF-8 text ({e.reason})") from None
    return parse_config(text, str(p))
