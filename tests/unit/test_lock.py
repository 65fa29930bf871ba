"""requirements.lock must pin every dependency pyproject.toml names, at a version its range
allows: a dependency changed without running scripts/lock fails here."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
_PIN_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        lines.extend(extra)
    requirements = [Requirement(line) for line in lines]
    return [req for req in requirements if req.marker is None or req.marker.evaluate()]


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := _PIN_RE.match(line):
            pins[canonicalize_name(match["name"])] = match["version"]
    return pins


def test_lock_pins_every_declared_dependency_within_its_range() -> None:
    pins = _pins()
    problems = []
    for req in _declared():
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} is not in requirements.lock")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} in the lock is outside {req}")
    assert not problems, "run scripts/lock: " + "; ".join(problems)


def test_lock_pins_what_declared_extras_pull_in() -> None:
    """``psycopg[binary]`` needs psycopg-binary pinned too (read from installed metadata)."""
    pins = _pins()
    missing = []
    for req in _declared():
        for extra in sorted(req.extras):
            try:
                requires = metadata.requires(req.name) or []
            except metadata.PackageNotFoundError:
                pytest.skip(f"{req.name} is not installed")
            for line in requires:
                dep = Requirement(line)
                pulled_in_by_extra = (
                    dep.marker is not None
                    and dep.marker.evaluate({"extra": extra})
                    and not dep.marker.evaluate({"extra": ""})
                )
                if pulled_in_by_extra and canonicalize_name(dep.name) not in pins:
                    missing.append(f"{dep.name} (from {req.name}[{extra}])")
    assert not missing, "run scripts/lock: not in requirements.lock: " + ", ".join(missing)


def test_every_lock_line_is_an_exact_pin_with_hashes() -> None:
    text = (ROOT / "requirements.lock").read_text()
    entries = [
        block for block in re.split(r"\n(?=\S)", text) if block and not block.startswith("#")
    ]
    assert entries
    for entry in entries:
        assert _PIN_RE.match(entry), f"not an exact pin: {entry.splitlines()[0]!r}"
        assert "--hash=sha256:" in entry, f"no hash: {entry.splitlines()[0]!r}"
