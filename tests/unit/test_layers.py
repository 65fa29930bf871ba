"""Layers kept apart (docs/architecture.md): blueprints check input, call the services and
shape responses; the services own the queries and the transactions. No module under
blueprints/ touches ``db.session`` (no query, commit or rollback) or builds a ``select(...)``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BLUEPRINTS = Path(__file__).resolve().parents[1] / "blueprints"

# Modules that may still run queries of their own while they are converted: this list only
# shrinks. Remove a module from it once its queries have moved into a service (a listed
# module without any is checked like the others, so removing it changes nothing).
NOT_YET_CONVERTED: list[str] = []


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


@pytest.mark.parametrize("module", sorted(path.name for path in BLUEPRINTS.glob("*.py")))
def test_blueprints_run_no_queries(module):
    uses = database_uses(BLUEPRINTS / module)
    if uses and module in NOT_YET_CONVERTED:
        pytest.skip(f"blueprints/{module} is not converted yet ({len(uses)} uses)")
    assert not uses, (f"blueprints/{module} queries the catalog itself ({', '.join(uses)}): "
                      "move the query, commit or rollback into a service function")


def test_the_allow_list_names_real_modules():
    assert set(NOT_YET_CONVERTED) <= {path.name for path in BLUEPRINTS.glob("*.py")}


def test_a_refusing_service_rolls_back_itself(app):
    """Blueprints never roll back: a service that refuses has done it, releasing the rows it
    locked (here the admins', locked to keep the last one)."""
    import accounts
    from extensions import db

    with app.app_context():
        with pytest.raises(accounts.AccountError, match="it is the last admin"):
            accounts.delete_user("admin")
        assert not db.session().in_transaction()
        assert accounts.find_user("admin") is not None


TESTS = Path(__file__).resolve().parent


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
