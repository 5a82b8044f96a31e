"""The dependency rule of DESIGN.md: console -> graduation -> alerts -> agents, never backwards."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["core", "agents", "alerts", "graduation", "console"]


def imported_apps(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in ORDER:
                yield top, node.lineno


@pytest.mark.parametrize("app", ORDER)
def test_an_app_imports_only_apps_below_it(app):
    allowed = set(ORDER[: ORDER.index(app) + 1])
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {top}"
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
        for top, line in imported_apps(path)
        if top not in allowed
    ]
    assert not offenders, "\n".join(offenders)
