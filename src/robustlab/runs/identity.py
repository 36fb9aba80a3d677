"""Who a job is: a digest of its resolved config (less the keys that cannot change a result) and of
the code that produced it.

The code version is a digest of the package's *syntax trees*, docstrings dropped, not of a git
commit or of the file bytes: a reformat, a comment or a docs-only commit keeps every finished job and
cached model valid, while any change to what the code does (or to where a module lives) makes them
stale. A git commit would not exist in a `pip install .` and would change on every README edit; a
hand-bumped version number would be forgotten.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1]  # src/robustlab


def digest(value: Any, length: int = 16) -> str:
    """A stable hex digest of any JSON-able value (dict keys sorted, so key order never matters)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@functools.cache
def code_version(package: Path = PACKAGE) -> str:
    """Digest of every module's syntax tree (comments, docstrings and formatting do not count)."""
    parts = []
    for path in sorted(package.rglob("*.py")):
        tree = _without_docstrings(ast.parse(path.read_text(), filename=str(path)))
        parts.append([path.relative_to(package).as_posix(), ast.dump(tree)])
    return digest(parts)
