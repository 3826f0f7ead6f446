"""Members and non-members for a membership-inference benchmark, loaded through `datasets`.

Sources: one labelled file or hub dataset (`data`, a 0/1 `label_field`: 1 = member, as WikiMIA
labels), or two files (`members`, `nonmembers`). Local JSONL/JSON, Parquet, Arrow/`save_to_disk`
folders never touch the network; a hub id is loaded at a `revision` (pin a commit for
reproducible numbers) and needs network. The labels are the provider's assertion: nothing here
can check that a "member" was in fact trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from canaries.drbg import HashDRBG, derive_seed
from harness.results import DatasetInfo

SAMPLE_SEED_LABEL = "tdp-mi-sample-v1"
SUFFIX_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".arrow": "arrow"}


class MIDataError(ValueError):
    """Members/non-members cannot be loaded as asked (missing file, field, label, network)."""


@dataclass(frozen=True)
class MIDataSpec:
    """Where the labelled texts come from and how they are cut (all recorded in the report)."""

    data: str | None = None  # one labelled source: file, folder or hub id
    members: str | None = None  # or: a source of members only ...
    nonmembers: str | None = None  # ... and one of non-members only
    revision: str | None = None  # hub revision (commit sha or tag)
    split: str = "train"
    text_field: str = "text"
    label_field: str = "label"
    max_per_class: int = 0  # 0: every item; else a seeded sample of this many per class
    max_words: int = 0  # 0: texts as stored; else each cut to its first max_words words

    def __post_init__(self) -> None:
        one, two = self.data is not None, (self.members, self.nonmembers) != (None, None)
        if one == two or (two and None in (self.members, self.nonmembers)):
            raise MIDataError("give either data=SOURCE (with a 0/1 label field) or both "
                              "members=SOURCE and nonmembers=SOURCE")
        if self.max_per_class < 0 or self.max_words < 0:
            raise MIDataError("max_per_class and max_words must be >= 0")
        for source in (self.data, self.members, self.nonmembers):  # fail before any model loads
            if source is not None and _is_local(source) and not Path(source).expanduser().exists():
                raise MIDataError(f"{source}: no such file or folder")


    def preflight(self) -> None:
        """Before any model is loaded: a hub source needs the hub (one quick probe)."""
        for source in (self.data, self.members, self.nonmembers):
            if source is not None and not _is_local(source):
                _hub_reachable(source)


@dataclass(frozen=True)
class MIItem:
    id: str
    text: str
    member: bool


def _is_local(source: str) -> bool:
    return (
        source.startswith(("/", ".", "~"))
        or Path(source).expanduser().exists()
        or Path(source).suffix in SUFFIX_FORMATS
    )


def _load_local(path: Path) -> Any:
    import datasets

    datasets.disable_progress_bars()  # one progress display is the caller's, not ours
    if not path.exists():
        raise MIDataError(f"{path}: no such file or folder")
    if path.is_dir():
        try:
            loaded = datasets.load_from_disk(str(path), keep_in_memory=True)
        except FileNotFoundError as e:
            raise MIDataError(f"{path}: not a folder written by save_to_disk ({e})") from e
        return loaded
    fmt = SUFFIX_FORMATS.get(path.suffix)
    if fmt is None:
        raise MIDataError(f"{path}: unknown format (use {', '.join(SUFFIX_FORMATS)})")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tdp-mi-") as cache:  # nothing left in ~/.cache
        try:
            return datasets.load_dataset(
                fmt, data_files=str(path), split="train", cache_dir=cache, keep_in_memory=True
            )
        except Exception as e:  # malformed files surface as many exception types
            raise MIDataError(f"{path}: cannot read as {fmt}: {' '.join(str(e).split())}") from e


def _hub_reachable(source: str) -> None:
    from harness.backends.hub import hub_offline, probe_hub

    why = "HF_HUB_OFFLINE is set" if hub_offline() else probe_hub()
    if why is not None:
        raise MIDataError(f"cannot load dataset {source!r} from the hub: no network ({why}); "
                          "give local files instead")


def _load_hub(source: str, spec: MIDataSpec) -> Any:
    import datasets

    _hub_reachable(source)
    try:
        return datasets.load_dataset(source, revision=spec.revision, split=spec.split)
    except Exception as e:
        raise MIDataError(f"cannot load dataset {source!r}@{spec.revision}: {e}") from e


def _rows(source: str, spec: MIDataSpec) -> Any:
    if _is_local(source):
        loaded = _load_local(Path(source).expanduser())
    else:
        loaded = _load_hub(source, spec)
    if hasattr(loaded, "keys") and not hasattr(loaded, "column_names"):  # a DatasetDict
        if spec.split not in loaded:
            raise MIDataError(f"{source}: no split {spec.split!r} (has {sorted(loaded)})")
        loaded = loaded[spec.split]
    return loaded


def _texts(ds: Any, source: str, field: str) -> list[str]:
    if field not in ds.column_names:
        raise MIDataError(f"{source}: no field {field!r} (fields: {ds.column_names})")
    texts = list(ds[field])
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise MIDataError(f"{source}: row {bad[0]} has an empty or non-text {field!r}")
    return texts


def _labelled(spec: MIDataSpec) -> tuple[list[str], list[str]]:
    """(member texts, non-member texts) in source order."""
    if spec.data is None:
        m = _texts(_rows(spec.members, spec), spec.members, spec.text_field)  # type: ignore[arg-type]
        n = _texts(_rows(spec.nonmembers, spec), spec.nonmembers, spec.text_field)  # type: ignore[arg-type]
        return m, n
    ds = _rows(spec.data, spec)
    texts = _texts(ds, spec.data, spec.text_field)
    if spec.label_field not in ds.column_names:
        raise MIDataError(f"{spec.data}: no label field {spec.label_field!r} (fields: "
                          f"{ds.column_names})")
    labels = list(ds[spec.label_field])
    if any(v not in (0, 1, True, False) for v in labels):
        raise MIDataError(
            f"{spec.data}: labels in {spec.label_field!r} must be 0 or 1 (1 = member)"
        )
    return ([t for t, v in zip(texts, labels, strict=True) if v],
            [t for t, v in zip(texts, labels, strict=True) if not v])


def _cut(text: str, max_words: int) -> str:
    return " ".join(text.split()[:max_words]) if max_words else text


def _sample(texts: list[str], k: int, seed: bytes, purpose: str) -> list[str]:
    if not k or len(texts) <= k:
        return texts
    order = list(range(len(texts)))
    HashDRBG(seed, purpose).shuffle(order)
    return [texts[i] for i in sorted(order[:k])]


def dataset_digest(items: list[MIItem]) -> str:
    """sha256 of the canonical JSON of [[text, 1|0], ...] in item order."""
    blob = json.dumps([[i.text, int(i.member)] for i in items], ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def load_mi_items(spec: MIDataSpec, name: str) -> tuple[list[MIItem], DatasetInfo]:
    """Members then non-members as items (ids m-/n-), deduplicated, sampled and cut as asked.

    A text that appears among both members and non-members is an error: its label is
    ambiguous. A `max_per_class` sample is drawn with a seed derived from the whole labelled
    set (SAMPLE_SEED_LABEL), so anyone can redraw it and nobody picks it after seeing scores.
    """
    members, nonmembers = _labelled(spec)
    members = list(dict.fromkeys(_cut(t, spec.max_words) for t in members))
    nonmembers = list(dict.fromkeys(_cut(t, spec.max_words) for t in nonmembers))
    both = set(members) & set(nonmembers)
    if both:
        raise MIDataError(f"{len(both)} text(s) are labelled both member and non-member, "
                          f"e.g. {next(iter(both))[:60]!r}")
    everything = [MIItem("", t, True) for t in members] + [MIItem("", t, False) for t in nonmembers]
    sample_seed = derive_seed(SAMPLE_SEED_LABEL, dataset_digest(everything))
    members = _sample(members, spec.max_per_class, sample_seed, "mi-members")
    nonmembers = _sample(nonmembers, spec.max_per_class, sample_seed, "mi-nonmembers")
    if len(members) < 2 or len(nonmembers) < 2:
        raise MIDataError(f"need at least 2 members and 2 non-members, got {len(members)} and "
                          f"{len(nonmembers)}")
    items = [MIItem(f"m-{i:05d}", t, True) for i, t in enumerate(members)]
    items += [MIItem(f"n-{i:05d}", t, False) for i, t in enumerate(nonmembers)]
    source = {k: v for k, v in asdict(spec).items() if v is not None}
    info = DatasetInfo(name, source, dataset_digest(items), len(members), len(nonmembers))
    return items, info
