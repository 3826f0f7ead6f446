"""Text corpora on disk: a directory of .txt documents or a JSONL file with a "text" field."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


def read_corpus(path: str | Path) -> Corpus:
    """Read a .txt directory (sorted by name) or a .jsonl file."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise CorpusError(f"{path}: directory holds no .txt documents")
        return Corpus(
            texts=[p.read_text("utf-8", errors="strict") for p in files],
            names=[str(p.relative_to(path)) for p in files],
        )
    if not path.exists():
        raise CorpusError(f"corpus not found: {path}")
    records: list[dict[str, Any]] = []
    with path.open("r", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
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


def write_corpus(corpus: Corpus, out: str | Path) -> Path:
    """Write in the corpus's own format; a JSONL file is written atomically."""
    out = Path(out)
    if corpus.is_jsonl:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for row, text in zip(corpus.records or [], corpus.texts, strict=True):
                f.write(json.dumps({**row, "text": text}, ensure_ascii=False) + "\n")
        os.replace(tmp, out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name, text in zip(corpus.names, corpus.texts, strict=True):
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, "utf-8")
    return out
