import os
import stat
from pathlib import Path

import pytest

from pgbackup import LocalStorage, Storage, validate_name


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("name", [
    "", "../x", "a/b", "a\\b", ".hidden", "..", "a..b", "x\x00y", "-dash", "sp ace", "é",
    "a" * 201,
])
def test_bad_names_are_rejected(name: str, storage: LocalStorage) -> None:
    with pytest.raises(ValueError, match=r"invalid storage name|non-empty"):
        validate_name(name)
    with pytest.raises(ValueError):
        storage.path(name)


@pytest.mark.parametrize("name", ["backup-1.dump.zst", "a", "A_b-c.manifest.json"])
def test_good_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name


def test_symlink_escaping_root_is_rejected(storage: LocalStorage, tmp_path: Path) -> None:
    (storage.root / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside the storage root"):
        storage.path("link")


def test_root_and_files_are_private(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "deep" / "backups")
    assert mode(storage.root) == 0o700
    with storage.atomic_writer("a.dump") as handle:
        handle.write(b"data")
    assert mode(storage.path("a.dump")) == 0o600


def test_a_directory_that_must_exist_is_not_made(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not an existing directory"):
        LocalStorage(tmp_path / "unmounted", create=False)
    assert not (tmp_path / "unmounted").exists()


def test_atomic_writer_publishes_only_on_success(storage: LocalStorage) -> None:
    with storage.atomic_writer("a.dump") as handle:
        handle.write(b"hello")
        assert not storage.exists("a.dump")
        assert storage.list_partials() == ["a.dump"]
    assert storage.open_read("a.dump").read() == b"hello"
    assert storage.size("a.dump") == 5
    assert storage.list_partials() == []


def test_atomic_writer_leaves_nothing_on_exception(storage: LocalStorage) -> None:
    with pytest.raises(RuntimeError, match="boom"), storage.atomic_writer("a.dump") as handle:
        handle.write(b"half")
        raise RuntimeError("boom")
    assert os.listdir(storage.root) == []


def test_failed_rewrite_keeps_the_previous_file(storage: LocalStorage) -> None:
    with storage.atomic_writer("a.dump") as handle:
        handle.write(b"old")
    with pytest.raises(RuntimeError), storage.atomic_writer("a.dump") as handle:
        handle.write(b"new")
        raise RuntimeError
    assert storage.open_read("a.dump").read() == b"old"


def test_delete_and_partials(storage: LocalStorage) -> None:
    storage.delete("missing.dump")
    (storage.root / ".left.dump.partial").write_bytes(b"x")
    (storage.root / ".not valid.partial").write_bytes(b"x")
    assert storage.list_partials() == ["left.dump"]
    assert storage.remove_partial_for("left.dump") is True
    assert storage.remove_partial_for("left.dump") is False
    assert storage.list_partials() == []


def test_list_names_is_the_complete_files_sorted(storage: LocalStorage) -> None:
    """What a rescan reads: final names only, never an unfinished write, a directory or a
    name the storage would refuse."""
    with storage.atomic_writer("b.manifest.json") as handle:
        handle.write(b"{}")
        assert storage.list_names() == []  # still a .partial
    (storage.root / "a.dump.zst").write_bytes(b"a")
    (storage.root / "RESTORE").write_text("kit")
    (storage.root / "sub").mkdir()
    (storage.root / "sp ace").write_bytes(b"x")
    any_storage: Storage = storage  # list_names is part of the protocol
    assert any_storage.list_names() == ["RESTORE", "a.dump.zst", "b.manifest.json"]
