"""The TypeScript client (clients/typescript, published as @rentalshop/utils) against the
app: its node tests, the seed's own examples among them, run with node's test runner
against the app on a real HTTP server, with a real `rq worker` doing the jobs.

The base URL and token reach the examples through the environment only
(RENTALSHOP_API_URL, RENTALSHOP_API_TOKEN), as the seed's code has no place to set them.
Needs Node.js 20.10+ and npm: a missing or older one is a failure that says what to
install (the package itself runs on Node.js 18+)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.formatting import filesize
from tests.conftest import ROOT
from tests.support.web import served

CLIENT = ROOT / "clients" / "typescript"
SEED = Path(os.environ.get("SEED_FILE",
                           ROOT.parent / "shared" / "seed" / "000_b7eca93501d032a9.txt"))
# The seed's one example id, which names no backup here: the tests put a real one's
# variable in its place (see clients/typescript/test/seed-restore.test.ts).
SEED_ID = "'backup-2024-01-15T10-30-00-000Z'"
NODE = (20, 10)  # the oldest Node.js whose test runner takes --test-concurrency
# Fenced as TypeScript in the seed, but a list of what a card shows, not code.
NOT_CODE = {"Backup Cards Display"}


def run(*command: str, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    """Run ``command`` in the client's folder and return what it wrote to stdout; a
    failure shows everything it printed."""
    done = subprocess.run(command, cwd=CLIENT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        pytest.fail(f"$ {' '.join(command)}: exit code {done.returncode}\n{done.stdout}\n"
                    f"{done.stderr}", pytrace=False)
    return done.stdout


@pytest.fixture(scope="module")
def npm() -> str:
    """npm, with the client's dependencies installed from package-lock.json."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: install Node.js {NODE[0]}.{NODE[1]} or newer "
                        "with npm", pytrace=False)
    version = tuple(int(part) for part in run("node", "--version").strip("v\n").split("."))
    if version < NODE:
        pytest.fail(f"node {'.'.join(map(str, version))} is too old: the tests need "
                    f"{NODE[0]}.{NODE[1]} or newer (node --test-concurrency)", pytrace=False)
    installed = CLIENT / "node_modules" / ".package-lock.json"
    lock = CLIENT / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        run("npm", "ci", "--no-audit", "--no-fund")
    return "npm"


@pytest.fixture
def live_url(app) -> Iterator[str]:
    """The app on a real threaded HTTP server: a waiting request holds one thread."""
    with served(app) as url:
        yield url


def size_cases() -> list[tuple[int | None, str]]:
    """Sizes and the dashboard's text for them: edges, exact halves, and a random spread."""
    sizes = [0, 1, 1023, 1024, 1280, 1536, 1792, 2**20 - 1, 2**20, 5 * 2**20 // 4,
             2**30 * 3 // 4 + 2**30, 2**40, 2**50, 2**60]
    sizes += [int(q * 1024**unit / 4) for unit in (1, 2, 3) for q in range(4, 4096, 2)]
    spread = random.Random(12)
    sizes += [spread.randrange(10 ** spread.randrange(1, 16)) for _ in range(500)]
    return [(None, filesize(None)), *((size, filesize(size)) for size in sizes)]


def test_the_client_and_the_seed_examples_run_against_the_app(
        api, live_url, worker, api_token, npm, tmp_path):
    cases = tmp_path / "sizes.json"
    cases.write_text(json.dumps(size_cases()))
    env = {**os.environ, "RENTALSHOP_API_URL": live_url, "RENTALSHOP_API_TOKEN": api_token,
           "RENTALSHOP_FORMAT_CASES": str(cases)}
    print(run(npm, "run", "check-schema", env=env, timeout=60))
    output = run(npm, "test", env=env)
    print(output)
    counts = dict(re.findall(r"^# (tests|pass) (\d+)$", output, re.MULTILINE))
    assert counts["pass"] == counts["tests"] and int(counts["tests"]) >= 18, output

    # What the seed's examples did, as the app saw it.
    restores = api.get("/api/system/backup/restore").get_json()["restores"]
    overwrite = [r for r in restores if r["mode"] == "overwrite"]
    assert [r["status"] for r in overwrite] == ["completed"]
    backups = api.get("/api/system/backup").get_json()["backups"]
    assert {b["status"] for b in backups} == {"completed"}
    assert {"full", "schema-only"} <= {b["type"] for b in backups}
    assert_laid_out_for_npm()


def assert_laid_out_for_npm() -> None:
    """What `npm publish` would send: the built package, its types, no sources or tests."""
    packed = json.loads(run("npm", "pack", "--dry-run", "--json", "--ignore-scripts"))
    files = {entry["path"] for entry in packed[0]["files"]}
    assert {"package.json", "dist/index.js", "dist/index.d.ts", "dist/schema.d.ts"} <= files
    assert not {path for path in files if path.startswith(("src/", "test/", "build/"))}
    manifest = json.loads((CLIENT / "package.json").read_text())
    assert manifest["name"] == "@rentalshop/utils" and manifest["type"] == "module"
    assert manifest["exports"]["."] == {"types": "./dist/index.d.ts",
                                        "default": "./dist/index.js"}
    assert not manifest.get("dependencies"), "the client has no runtime dependencies"




def seed_examples() -> list[tuple[str, list[str], list[str]]]:
    """The seed's TypeScript examples: (heading, import lines, the other lines)."""
    if not SEED.exists():
        pytest.fail(f"the seed is not at {SEED} (set SEED_FILE)", pytrace=False)
    examples, text = [], SEED.read_text()
    for match in re.finditer(r"^```typescript\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        heading = re.findall(r"^#+ \**(.+?)\**$", text[:match.start()], re.MULTILINE)[-1]
        if heading in NOT_CODE:
            continue
        lines = match.group(1).strip("\n").splitlines()
        imports = [line for line in lines if line.startswith("import ")]
        body = [line.strip() for line in lines if line not in imports]
        while body and not body[0]:
            body.pop(0)
        examples.append((heading, imports, [line.replace(SEED_ID, "backupId")
                                            for line in body]))
    return examples


def pasted_blocks() -> dict[Path, list[list[str]]]:
    """Each node test file's blocks between ``// seed: begin`` and ``// seed: end``."""
    blocks = {}
    for path in sorted((CLIENT / "test").glob("seed-*.test.ts")):
        found = re.findall(r"// seed: begin\n(.*?)\n\s*// seed: end", path.read_text(),
                           re.DOTALL)
        blocks[path] = [[line.strip() for line in block.splitlines()] for block in found]
    return blocks


def test_the_seed_examples_are_pasted_verbatim():
    examples, pasted = seed_examples(), pasted_blocks()
    assert len(examples) == 10
    assert sum(len(blocks) for blocks in pasted.values()) == len(examples)
    for heading, imports, body in examples:
        where = [path for path, blocks in pasted.items() if body in blocks]
        assert where, f"the seed's example {heading!r} is not pasted as it is"
        lines = where[0].read_text().splitlines()
        assert all(line in lines for line in imports), (heading, imports)
