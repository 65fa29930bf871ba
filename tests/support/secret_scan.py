"""Gather everything an app run wrote, as text, and look for secrets in it.

Used by tests/test_secret_hygiene.py. A "haystack" is one named piece of what the app
wrote (a log, a Redis key, a catalog table, a file, a response); a secret is looked for in
every haystack in every form it could be written in.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import zstandard
from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job

Haystacks = dict[str, str]


@dataclass(frozen=True)
class Secret:
    """``core`` is a random part of ``value`` that every encoding leaves intact."""

    name: str
    value: str
    core: str

    def forms(self) -> dict[str, str]:
        forms = {
            "raw": self.value,
            "url-encoded": quote(self.value, safe=""),
            "url-encoded (path)": quote(self.value),
            "form-encoded": quote_plus(self.value),
            "json-escaped": json.dumps(self.value)[1:-1],
            "repr-escaped": repr(self.value)[1:-1],
            "passfile-escaped": self.value.replace("\\", "\\\\").replace(":", "\\:"),
            "random core": self.core,
        }
        return {label: form for label, form in forms.items() if form}


@dataclass(frozen=True)
class Leak:
    secret: str
    form: str
    haystack: str
    context: str

    def __str__(self) -> str:
        return f"{self.secret} ({self.form}) in {self.haystack}: ...{self.context}..."


def find_leaks(secrets: Iterable[Secret], haystacks: Haystacks,
               allowed: dict[str, tuple[str, ...]] | None = None) -> list[Leak]:
    """One leak per (secret, haystack) where any form of the secret is found, except in
    the haystacks whose names start with one of ``allowed[secret.name]``."""
    leaks = []
    for secret in secrets:
        forms = secret.forms()
        for name, text in haystacks.items():
            if name.startswith((allowed or {}).get(secret.name, ())):
                continue
            found = {label: text.find(form) for label, form in forms.items()}
            found = {label: at for label, at in found.items() if at >= 0}
            if found:
                at = min(found.values())
                context = text[max(0, at - 60):at + len(secret.value) + 60]
                leaks.append(Leak(secret.name, ", ".join(found), name,
                                  context.replace("\n", "\\n")))
    return leaks


def as_text(data: bytes) -> str:
    """Bytes as text without losing anything: UTF-8 where it decodes, escapes elsewhere."""
    return data.decode("utf-8", errors="backslashreplace")


def unpacked(data: bytes) -> Iterator[str]:
    """``data`` and whatever it holds: zlib-compressed and/or pickled payloads (RQ's)."""
    yield as_text(data)
    for candidate in (data, _unzlib(data)):
        if candidate is None:
            continue
        if candidate is not data:
            yield as_text(candidate)
        loaded = None
        with contextlib.suppress(Exception):  # not a pickle: the raw text above is enough
            loaded = repr(pickle.loads(candidate))  # our own Redis, our own jobs
        if loaded is not None:
            yield loaded


def _unzlib(data: bytes) -> bytes | None:
    try:
        return zlib.decompress(data)
    except zlib.error:
        return None


def redis_dump(client: Redis) -> Haystacks:
    """Every key of the Redis database, by type, with RQ's packed fields unpacked; plus
    each RQ job as RQ reads it back (args, kwargs, meta, description, result, error)."""
    dump: Haystacks = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        values: list[bytes] = []
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "hash":
            values = [item for pair in client.hgetall(key).items() for item in pair]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = sorted(client.smembers(key))
        elif kind == "zset":
            values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [item for _, fields in client.xrange(key)
                      for pair in fields.items() for item in pair]
        else:
            values = [repr(client.dump(key)).encode()]
        texts = [text for value in values for text in unpacked(value)]
        dump[f"redis {kind} {as_text(key)}"] = "\n".join([as_text(key), *texts])
        if kind == "hash" and key.startswith(b"rq:job:"):
            dump[f"rq job {as_text(key)}"] = _job_repr(client, as_text(key)[len("rq:job:"):])
    return dump


def _job_repr(client: Redis, job_id: str) -> str:
    try:
        job = Job.fetch(job_id, connection=client)
    except NoSuchJobError:
        return ""
    parts = [job.description or "", repr(job.meta)]
    try:
        parts += [job.func_name, repr(job.args), repr(job.kwargs)]
    except Exception as exc:  # a job whose function moved still has its data
        parts.append(f"unreadable job data: {exc!r}")
    for result in job.results():
        parts += [repr(result.return_value), result.exc_string or ""]
    return "\n".join(parts)


def sqlite_dump(path: Path) -> Haystacks:
    """Every table of an SQLite catalog, row by row, one haystack per table."""
    dump: Haystacks = {}
    with sqlite3.connect(path) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            dump[f"catalog table {table}"] = "\n".join(repr(row) for row in rows)
    return dump


def files_dump(root: Path) -> Haystacks:
    """Every file under ``root``, raw; zstd artifacts decompressed as well."""
    dump: Haystacks = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        dump[f"file {path.relative_to(root)}"] = as_text(data)
        if path.name.endswith(".zst"):
            with path.open("rb") as handle:
                plain = zstandard.ZstdDecompressor().stream_reader(handle).read()
            dump[f"file {path.relative_to(root)} (decompressed)"] = as_text(plain)
    return dump
