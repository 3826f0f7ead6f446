"""An English corpus available offline everywhere: docstrings of Python's standard library.

Read with `ast` from the stdlib's source files (nothing is imported or executed), in sorted
file order, so the same Python version yields the same corpus.
"""

from __future__ import annotations

import ast
import inspect
import sysconfig
import warnings
from pathlib import Path

SKIP_PARTS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "turtledemo"}


def _docstrings(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                out.append(inspect.cleandoc(doc))
    return out


def _prose(doc: str, min_chars: int) -> bool:
    if len(doc) < min_chars:
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in doc)
    return letters / len(doc) > 0.85 and doc.isascii()


def stdlib_docstrings(max_bytes: int = 300_000, min_chars: int = 200) -> list[str]:
    """Prose-like docstrings of the running Python's stdlib, up to `max_bytes` in total."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    total = 0
    for path in sorted(root.rglob("*.py")):
        if SKIP_PARTS & set(path.relative_to(root).parts):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_text("utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for doc in _docstrings(tree):
            if _prose(doc, min_chars):
                docs.append(doc)
                total += len(doc)
                if total >= max_bytes:
                    return docs
    if not docs:
        raise RuntimeError(f"no docstrings found under {root}")
    return docs
