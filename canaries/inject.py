"""Insert each canary r times at random line boundaries of random documents (seeded)."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from canaries.canary_set import CanarySet
from canaries.corpus import Corpus, check_corpus_output, read_corpus, write_corpus
from canaries.drbg import HashDRBG
from canaries.files import atomic_write_text, check_new_output, clean_leftovers

#: the manifest says where each canary went: as private as the canary file
MANIFEST_MODE = 0o600


class InjectError(ValueError):
    """Injection parameters are invalid (repeat < 1, an empty corpus)."""


@dataclass(frozen=True)
class Insertion:
    canary_id: str
    document: str
    char_offset: int  # offset in the original document


@dataclass(frozen=True)
class InjectionManifest:
    """What was inserted where; kept next to the corpus, never inside it."""

    canary_commitment: str
    repeat: int
    seed: str
    documents: int
    insertions: tuple[Insertion, ...]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["insertions"] = [asdict(i) for i in self.insertions]
        return d


def _line_starts(text: str) -> list[int]:
    return [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n" and i + 1 < len(text)]


def inject_texts(
    texts: list[str], cs: CanarySet, repeat: int, seed: bytes
) -> tuple[list[str], list[tuple[str, int, int]]]:
    """Pure core: return new texts and (canary_id, doc_index, char_offset) per insertion."""
    if repeat < 1:
        raise InjectError(f"repeat must be >= 1, got {repeat}")
    if not texts:
        raise InjectError("cannot inject into an empty corpus")
    rng = HashDRBG(seed, "inject")
    plan: dict[int, list[tuple[int, str, str]]] = {}
    placed: list[tuple[str, int, int]] = []
    for c in cs.canaries:
        for _ in range(repeat):
            doc = rng.randbelow(len(texts))
            starts = _line_starts(texts[doc]) + [len(texts[doc])]
            offset = starts[rng.randbelow(len(starts))]
            plan.setdefault(doc, []).append((offset, c.id, c.text))
            placed.append((c.id, doc, offset))
    out = list(texts)
    for doc, inserts in plan.items():
        text = texts[doc]
        # insert from the end so earlier offsets stay valid; stable order for equal offsets
        for offset, _, ctext in sorted(inserts, key=lambda t: t[0], reverse=True):
            before, after = text[:offset], text[offset:]
            sep = "" if offset == 0 or before.endswith("\n") else "\n"
            text = before + sep + ctext + ("\n" if after else "") + after
        out[doc] = text
    return out, placed


def check_inject_output(corpus_path: str | Path, out: str | Path, force: bool = False) -> None:
    """Refuse, before any work, to overwrite a corpus or manifest unasked (see `write_corpus`)."""
    out = Path(out)
    check_corpus_output(Path(corpus_path), out, force)
    check_new_output(manifest_path(out), force, "manifest")


def inject_corpus(
    corpus_path: str | Path,
    cs: CanarySet,
    repeat: int,
    out: str | Path,
    seed: bytes | None = None,
    force: bool = False,
) -> InjectionManifest:
    """Write a copy of the corpus with the canaries inserted, and `out.manifest.json`.

    Nothing existing is overwritten unless `force`; the old corpus is replaced only once the
    new one is complete, and its manifest right after.
    """
    check_inject_output(corpus_path, out, force)
    corpus = read_corpus(corpus_path)
    seed = secrets.token_bytes(16) if seed is None else seed
    texts, placed = inject_texts(corpus.texts, cs, repeat, seed)
    manifest = InjectionManifest(
        canary_commitment=cs.commitment,
        repeat=repeat,
        seed=seed.hex(),
        documents=len(texts),
        insertions=tuple(Insertion(cid, corpus.names[d], off) for cid, d, off in placed),
    )
    clean_leftovers(manifest_path(out))
    write_corpus(Corpus(texts=texts, names=corpus.names, records=corpus.records), out, force)
    text = json.dumps(manifest.to_dict(), indent=1) + "\n"
    atomic_write_text(manifest_path(out), text, MANIFEST_MODE, force, "manifest")
    return manifest


def manifest_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".manifest.json")
