"""Where backup artifacts and manifests are stored: the Storage protocol, and the local
filesystem's implementation.

Every write goes through ``atomic_writer``: an object appears under its final name only
once it is complete (locally: a hidden ``.<name>.partial`` file renamed into place after it
is on disk), so whatever is listed under a final name is whole.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from pgbackup.streams import Readable, Writable

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_NAME_LENGTH = 200
_PARTIAL_RE = re.compile(r"^\.(?P<name>.+)\.partial$")
DIR_MODE = 0o700
FILE_MODE = 0o600


def validate_name(name: str) -> str:
    """Return ``name`` if it is a safe flat file name, else raise ValueError saying why."""
    if not isinstance(name, str) or not name:
        raise ValueError("storage name must be a non-empty string")
    problems = [
        ("\x00" in name, "contains a NUL byte"),
        ("/" in name or "\\" in name, "contains a path separator"),
        (".." in name, "contains '..'"),
        (name.startswith("."), "starts with '.'"),
        (len(name) > _MAX_NAME_LENGTH, f"is longer than {_MAX_NAME_LENGTH} characters"),
        (not _NAME_RE.fullmatch(name), "may only use letters, digits, '.', '_' and '-'"),
    ]
    for failed, reason in problems:
        if failed:
            raise ValueError(f"invalid storage name {name!r}: {reason}")
    return name


class Storage(Protocol):
    """A flat namespace of named objects (a directory, a bucket prefix)."""

    def atomic_writer(self, name: str) -> AbstractContextManager[Writable]:
        """A writer whose data appears as ``name`` only if the block succeeds."""
        ...

    def open_read(self, name: str) -> AbstractContextManager[Readable]:
        """A reader of ``name``'s bytes, streamed."""
        ...

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    def delete(self, name: str) -> None:
        """Remove ``name``; a missing object is not an error."""
        ...

    def location(self, name: str) -> str:
        """Where ``name`` lives, for people: a path or an s3:// URL (no secret)."""
        ...

    def list_names(self) -> list[str]:
        """Sorted names of the complete objects directly in it (no unfinished writes)."""
        ...

    def remove_partial_for(self, name: str) -> bool:
        """Discard an unfinished write of ``name`` (one whose writer was killed); True if
        there was one."""
        ...


class LocalStorage:
    """A flat directory of backup files, private to the owner (0700 dir, 0600 files)."""

    def __init__(self, root: Path | str, create: bool = True) -> None:
        """``create``: make the directory when it is missing; without it a missing
        directory (an unmounted disk, say) is a FileNotFoundError, not a new directory."""
        self.root = Path(root)
        if not self.root.is_dir():
            if not create:
                raise FileNotFoundError(f"{self.root} is not an existing directory")
            self.root.mkdir(mode=DIR_MODE, parents=True)
            self.root.chmod(DIR_MODE)

    def path(self, name: str) -> Path:
        """Absolute path of ``name``; refuses names (or symlinks) that leave the root."""
        path = self.root / validate_name(name)
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise ValueError(f"invalid storage name {name!r}: resolves outside the storage root")
        return path

    def _partial_path(self, name: str) -> Path:
        return self.root / f".{validate_name(name)}.partial"

    @contextmanager
    def atomic_writer(self, name: str) -> Iterator[BinaryIO]:
        """Yield a binary file that appears as ``name`` only if the block succeeds."""
        final = self.path(name)
        partial = self._partial_path(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        fd = os.open(partial, flags, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        self._fsync_root()

    def _fsync_root(self) -> None:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def open_read(self, name: str) -> io.BufferedReader:
        return self.path(name).open("rb")

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def size(self, name: str) -> int:
        return self.path(name).stat().st_size

    def delete(self, name: str) -> None:
        """Remove ``name``; a missing file is not an error."""
        self.path(name).unlink(missing_ok=True)

    def list_names(self) -> list[str]:
        """Sorted names of the stored files (not the hidden ``.partial`` files)."""
        return sorted(
            entry.name for entry in self.root.iterdir()
            if is_valid_name(entry.name) and entry.is_file()
        )

    def location(self, name: str) -> str:
        """Where ``name`` is stored, for messages: its absolute path."""
        return str(self.path(name))

    def describe(self) -> str:
        """One line for the operator: where the files go."""
        return f"local directory {self.root}"

    def list_partials(self) -> list[str]:
        """Names (final names, not the hidden files) that have an unfinished write."""
        names = []
        for entry in self.root.iterdir():
            match = _PARTIAL_RE.fullmatch(entry.name)
            if match and is_valid_name(match["name"]):
                names.append(match["name"])
        return sorted(names)

    def remove_partial_for(self, name: str) -> bool:
        """Delete the unfinished write of ``name``; True if there was one."""
        try:
            self._partial_path(name).unlink()
        except FileNotFoundError:
            return False
        return True


def is_valid_name(name: str) -> bool:
    """Whether ``name`` passes :func:`validate_name`."""
    try:
        validate_name(name)
    except ValueError:
        return False
    return True
