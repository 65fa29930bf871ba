"""fan_out: one stream into several storages, a failing optional branch dropping out alone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from pgbackup import LocalStorage
from pgbackup.fanout import Branch, FanOutError, fan_out
from pgbackup.streams import Writable

DATA = [b"a" * 1000, b"b" * 1000, b"c" * 1000]


class Broken(Exception):
    pass


@contextmanager
def failing_after(storage: LocalStorage, name: str, writes: int) -> Iterator[Writable]:
    """A sink that fails on write number ``writes + 1`` (its partial file then discarded)."""
    with storage.atomic_writer(name) as raw:

        class Sink:
            count = 0

            def write(self, data: bytes) -> int:
                Sink.count += 1
                if Sink.count > writes:
                    raise Broken(f"{name} broke")
                return raw.write(data)

        yield Sink()


@contextmanager
def failing_on_close(storage: LocalStorage, name: str) -> Iterator[Writable]:
    with storage.atomic_writer(name) as raw:
        yield raw
        raise Broken("cannot complete the upload")


def branch(name: str, opener: AbstractContextManager[Writable] | None, storage: LocalStorage,
           required: bool = True) -> Branch:
    return Branch(name, (lambda: opener) if opener else (lambda: storage.atomic_writer("x")),
                  required)


@pytest.fixture
def stores(tmp_path: Path) -> list[LocalStorage]:
    return [LocalStorage(tmp_path / str(n)) for n in range(3)]


def write_all(branches: list[Branch]) -> None:
    with fan_out(branches) as sink:
        for chunk in DATA:
            sink.write(chunk)


def test_every_branch_gets_every_byte(stores: list[LocalStorage]) -> None:
    branches = [branch(f"s{n}", None, s) for n, s in enumerate(stores)]
    write_all(branches)
    assert [s.path("x").read_bytes() for s in stores] == [b"".join(DATA)] * 3
    assert not any(b.failed for b in branches)


def test_a_failing_optional_branch_drops_out_and_keeps_nothing(
        stores: list[LocalStorage]) -> None:
    bad = Branch("offsite", lambda: failing_after(stores[1], "x", 1), required=False)
    good = [branch("local", None, stores[0]), bad, branch("nas", None, stores[2])]
    write_all(good)
    assert isinstance(bad.error, Broken)
    assert stores[0].path("x").read_bytes() == stores[2].path("x").read_bytes()
    assert not stores[1].exists("x") and stores[1].list_partials() == []


def test_a_failing_required_branch_fails_the_write_and_every_branch_discards(
        stores: list[LocalStorage]) -> None:
    branches = [branch("local", None, stores[0]),
                Branch("offsite", lambda: failing_after(stores[1], "x", 1), required=True),
                branch("nas", None, stores[2], required=False)]
    with pytest.raises(FanOutError, match="offsite: x broke"):
        write_all(branches)
    assert not any(s.exists("x") or s.list_partials() for s in stores)


def test_a_failure_when_completing_is_the_branch_s_own(stores: list[LocalStorage]) -> None:
    optional = Branch("offsite", lambda: failing_on_close(stores[1], "x"), required=False)
    write_all([branch("local", None, stores[0]), optional])
    assert isinstance(optional.error, Broken) and stores[0].exists("x")
    required = Branch("offsite", lambda: failing_on_close(stores[1], "x"), required=True)
    with pytest.raises(FanOutError, match="cannot complete the upload"):
        write_all([required])


def test_an_error_in_the_producer_discards_every_branch(stores: list[LocalStorage]) -> None:
    with pytest.raises(RuntimeError), fan_out([branch(f"s{n}", None, s)
                                               for n, s in enumerate(stores)]) as sink:
        sink.write(b"half a dump")
        raise RuntimeError("pg_dump failed")
    assert not any(s.exists("x") or s.list_partials() for s in stores)
