"""Layers kept apart (docs/architecture.md): blueprints -> services -> jobs -> pgbackup.

Blueprints check input, call the services and shape responses; the services own the queries
and the transactions. No module under blueprints/ touches ``db.session`` (no query, commit or
rollback) or builds a ``select(...)``; the services import no blueprint; the engine imports
neither Flask nor RQ nor anything of the app's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLUEPRINTS = ROOT / "blueprints"

def database_uses(path: Path) -> list[str]:
    """Where ``path`` uses ``db.session`` or calls ``select(...)``: ["line 12: db.session"]."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (isinstance(node, ast.Attribute) and node.attr == "session"
                and isinstance(node.value, ast.Name) and node.value.id == "db"):
            found.append((node.lineno, node.col_offset, "db.session"))
        elif isinstance(node, ast.Call) and _called_name(node.func) == "select":
            found.append((node.lineno, node.col_offset, "select(...)"))
    return [f"line {line}: {what}" for line, _, what in sorted(found)]


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def test_the_check_sees_queries_and_transactions(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("rows = db.session.scalars(sa.select(Backup))\n"
                      "db.session.rollback()\nq = select(User)\nselected = chosen.select\n")
    assert database_uses(module) == ["line 1: db.session", "line 1: select(...)",
                                     "line 2: db.session", "line 3: select(...)"]


def modules(package: str) -> list[str]:
    return sorted(str(path.relative_to(ROOT)) for path in (ROOT / package).rglob("*.py"))


def top_level_imports(path: Path) -> set[str]:
    """The first component of every module ``path`` imports (absolute imports only)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("module", modules("blueprints"))
def test_blueprints_run_no_queries(module):
    uses = database_uses(ROOT / module)
    assert not uses, (f"{module} queries the catalog itself ({', '.join(uses)}): "
                      "move the query, commit or rollback into a service function")


@pytest.mark.parametrize(("package", "forbidden"), [
    ("services", {"blueprints", "commands", "app"}),
    ("jobs", {"blueprints", "commands"}),  # jobs/context.py builds the app in a worker
    ("pgbackup", {"flask", "flask_sqlalchemy", "flask_login", "rq", "rq_scheduler", "blueprints",
                  "commands", "jobs", "services", "app"}),
])
def test_layers_import_only_downwards(package, forbidden):
    found = {module: sorted(used) for module in modules(package)
             if (used := top_level_imports(ROOT / module) & forbidden)}
    assert not found, f"{package} must not import {sorted(forbidden)}: {found}"


TESTS = Path(__file__).resolve().parents[1]  # tests/


def imported_test_modules(path: Path) -> list[str]:
    """The test modules (``tests.test_*``, ``tests.<sub>.test_*``) that ``path`` imports from,
    with the lines: ["line 9: tests.test_auth"]. A relative import counts as what it names."""
    package = path.relative_to(TESTS.parent).parent.parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            anchor = package[:len(package) - node.level + 1] if node.level else ()
            base = ".".join([*anchor, *([node.module] if node.module else [])])
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            for depth in (2, 3):
                if (parts[0] == "tests" and len(parts) >= depth
                        and parts[depth - 1].startswith("test_")):
                    found.add((node.lineno, ".".join(parts[:depth])))
    return [f"line {line}: {module}" for line, module in sorted(found)]


def test_no_test_module_imports_from_another():
    """A test module imports no other test module: helpers shared between them live in
    tests/support/, shared fixtures in the nearest conftest.py that covers their users."""
    found = {str(path.relative_to(TESTS.parent)): imports
             for path in sorted(TESTS.rglob("*.py")) if (imports := imported_test_modules(path))}
    assert not found, ("move what these import into tests/support/ (helpers) or a conftest.py "
                       f"(fixtures): {found}")
