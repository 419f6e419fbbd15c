"""The import rule import-linter cannot state: a project import inside a function is a
cycle dodge, so none are allowed, except where a heavy optional third-party module comes
with it; such an import sits right under a comment that starts with "# Heavy" and says
why."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "eval", "retrieval", "ingest", "index", "core")


def deferred_project_imports(path: Path, root: Path = ROOT) -> list[str]:
    """`file:line module` for each project import inside a function that is not under a
    "# Heavy" comment (a run of imports under one comment shares it)."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for func in ast.walk(ast.parse(source)):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        imports = [n for n in ast.walk(func) if isinstance(n, ast.Import | ast.ImportFrom)]
        import_rows = {row for n in imports for row in range(n.lineno - 1, n.end_lineno or 0)}
        for node in imports:
            if isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module or ""]
            else:
                names = [alias.name for alias in node.names]
            if not any(name.split(".")[0] in PACKAGES for name in names):
                continue
            row = node.lineno - 2
            while row >= 0 and (row in import_rows or not lines[row].strip()):
                row -= 1
            if row < 0 or not lines[row].strip().startswith("# Heavy"):
                found.append(f"{path.relative_to(root)}:{node.lineno} {', '.join(names)}")
    return found


def test_no_project_import_is_deferred_without_a_heavy_reason() -> None:
    offenders = [
        hit
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for hit in deferred_project_imports(path)
    ]
    assert offenders == [], "move these imports to the top of their module:\n" + "\n".join(
        offenders
    )


def test_the_check_finds_a_deferred_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from core.errors import NotFound\n    return NotFound\n\n"
        "def g():\n    # Heavy: presidio pulls in torch (~4 s).\n"
        "    from presidio_analyzer import Pattern\n\n"
        "    from ingest.recognizers import CARD_CONTEXT\n    return CARD_CONTEXT, Pattern\n"
    )
    assert deferred_project_imports(sample, tmp_path) == ["sample.py:2 core.errors"]
