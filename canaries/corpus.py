"""Text corpora on disk: a directory of .txt documents or a JSONL file with a "text" field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canaries.files import (
    OutputError,
    atomic_write_text,
    build_dir,
    check_writable_dir,
    clean_leftovers,
    is_regular_file,
    refuse_link,
)


class CorpusError(ValueError):
    """A corpus path is missing, empty or malformed."""


@dataclass
class Corpus:
    """Documents in order, plus what is needed to write them back in the same format."""

    texts: list[str]
    names: list[str]
    records: list[dict[str, Any]] | None = None  # JSONL rows, other fields kept

    @property
    def is_jsonl(self) -> bool:
        return self.records is not None


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None


def read_corpus(path: str | Path) -> Corpus:
    """Read a .txt directory (sorted by name) or a .jsonl file."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if not p.is_dir() or p.is_symlink())
        odd = [p for p in files if not is_regular_file(p)]
        if odd:  # a link could pull any file on the machine into the copy
            raise CorpusError(f"{odd[0]}: not a regular file (links and devices are refused)")
        if not files:
            raise CorpusError(f"{path}: directory holds no .txt documents")
        return Corpus(
            texts=[_read_text(p) for p in files],
            names=[str(p.relative_to(path)) for p in files],
        )
    if not path.exists():
        raise CorpusError(f"corpus not found: {path}")
    if not is_regular_file(path.resolve()):
        raise CorpusError(f"{path}: not a regular file or a folder of .txt documents")
    records: list[dict[str, Any]] = []
    for n, line in enumerate(_read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}:{n}: not valid JSON ({e})") from e
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise CorpusError(f"{path}:{n}: each JSONL row needs a string field 'text'")
        records.append(row)
    if not records:
        raise CorpusError(f"{path}: no documents")
    return Corpus(
        texts=[r["text"] for r in records],
        names=[str(i) for i in range(len(records))],
        records=records,
    )


def check_corpus_output(corpus_path: Path, out: Path, force: bool) -> None:
    """Refuse, before any work, an output that would overwrite or land inside the input."""
    refuse_link(out, "output corpus")
    src, dst = corpus_path.resolve(), out.resolve()
    if dst == src or src in dst.parents:
        raise OutputError(f"output {out} is (or lies inside) the input corpus {corpus_path}")
    if src.is_dir() and out.is_file():
        raise OutputError(f"output {out} is a file; a folder corpus needs a folder")
    if src.is_file() and out.is_dir():
        raise OutputError(f"output {out} is a folder; a JSONL corpus needs a file path")
    occupied = out.is_file() or (out.is_dir() and any(out.iterdir()))
    if occupied and not force:
        what = "file" if out.is_file() else "non-empty folder"
        raise OutputError(
            f"output {out} is an existing {what}; refusing to overwrite it (use --force)"
        )
    check_writable_dir(out.parent)


def write_corpus(corpus: Corpus, out: str | Path, force: bool = True) -> Path:
    """Write in the corpus's own format, complete or not at all; an old `out` is replaced only
    after the new one is whole (and refused without `force`, unless it is an empty folder)."""
    out = Path(out)
    clean_leftovers(out)
    if corpus.is_jsonl:
        rows = (json.dumps({**row, "text": text}, ensure_ascii=False) + "\n"
                for row, text in zip(corpus.records or [], corpus.texts, strict=True))
        return atomic_write_text(out, "".join(rows), force=force, what="output corpus")

    def fill(tmp: Path) -> None:
        for name, text in zip(corpus.names, corpus.texts, strict=True):
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, "utf-8")
        if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
            out.rmdir()  # an empty folder holds no result to protect

    return build_dir(out, fill, force, "output corpus")
