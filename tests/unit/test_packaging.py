"""What `pip install .` puts at the top of site-packages: `app` (the design card's entry
point) and the app's packages, never generic modules such as `settings` or `models`, and
nothing of tools/ or tests/."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_installs_app_and_five_packages_only():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_packages(str(ROOT), **config["packages"]["find"])
    assert config["py-modules"] == ["app"]
    assert {name.split(".")[0] for name in packages} == {
        "blueprints", "commands", "jobs", "pgbackup", "services"}
    assert {"blueprints.api", "blueprints.dashboard"} <= set(packages)


def test_no_python_module_is_left_at_the_top_level():
    assert sorted(path.name for path in ROOT.glob("*.py")) == ["app.py"]
