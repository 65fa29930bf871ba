"""Client-side encryption in the standard age format (age-encryption.org/v1, X25519).

Recipients (``age1...`` public keys) encrypt; identities (``AGE-SECRET-KEY-1...``) decrypt.
Both are parameters: nothing here reads settings. Encryption and decryption stream through
pyrage (rage) in a thread that talks to the caller over an OS pipe, so memory stays bounded
(age's STREAM works in 64 KiB chunks). No message ever contains key material.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import pyrage
from pyrage.x25519 import Identity, Recipient

from pgbackup.errors import ConfigError, DecryptionError
from pgbackup.streams import Readable, Writable

IDENTITIES_SETTING = "BACKUP_AGE_IDENTITIES"
SECRET_KEY_PREFIX = "AGE-SECRET-KEY-1"
_NO_MATCHING_KEY = "No matching keys found"  # rage's message when no identity fits


def parse_recipients(values: Sequence[str]) -> list[Recipient]:
    """The age X25519 public keys in ``values``; ConfigError naming the first bad entry."""
    if not values:
        raise ConfigError("no age recipient given: encryption needs at least one public key")
    return [_parse_recipient(value.strip(), position) for position, value in
            enumerate(values, 1)]


def _parse_recipient(value: str, position: int) -> Recipient:
    if value.upper().startswith(SECRET_KEY_PREFIX):
        raise ConfigError(f"age recipient {position} is a secret key, not a public key: give "
                          "its public key (age-keygen -y prints it)")
    try:
        return Recipient.from_str(value)
    except pyrage.RecipientError:
        raise ConfigError(
            f"age recipient {position} is not an age X25519 public key (age1...)"
        ) from None


def load_identities(path: Path | str) -> list[Identity]:
    """The identities in an age identity file, as age-keygen writes it: one
    ``AGE-SECRET-KEY-1...`` per line; blank lines and ``#`` comments are ignored."""
    where = f"{IDENTITIES_SETTING} file {path}"
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror or exc}") from None
    identities = [
        _parse_identity(line.strip(), number, where) for number, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith(b"#")
    ]
    if not identities:
        raise ConfigError(f"{where} holds no age identity")
    return identities


def _parse_identity(line: bytes, number: int, where: str) -> Identity:
    try:
        return Identity.from_str(line.decode("ascii"))
    except (UnicodeDecodeError, pyrage.IdentityError):
        raise ConfigError(f"{where}: line {number} is not an age identity") from None


def recipients_of(identities: Sequence[Identity]) -> list[str]:
    """The public keys (``age1...``) of ``identities``, for display."""
    return [str(identity.to_public()) for identity in identities]


class _Capturing:
    """Stands between pyrage and a Python stream, keeping the stream's own exception (pyrage
    would wrap it in a message of its own)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self.stream.read(size)
        except BaseException as exc:
            self.error = exc
            raise
        return data

    def write(self, data: bytes) -> int:
        try:
            self.stream.write(data)
        except BaseException as exc:
            self.error = exc
            raise
        return len(data)


class _Worker:
    """Runs ``work`` in a daemon thread, keeping what it raised; then ``cleanup``."""

    def __init__(self, work: Callable[[], None], cleanup: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self._work, self._cleanup = work, cleanup
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as exc:
            self.error = exc
        finally:
            self._cleanup()

    def join(self) -> None:
        self._thread.join()


@contextmanager
def encrypting_writer(raw: Writable, recipients: Sequence[Recipient]) -> Iterator[Writable]:
    """Yield a writer whose data reaches ``raw`` as an age file for ``recipients``; the age
    stream is finished on exit. ``raw`` is left open.

    If ``raw.write`` raises, the writer's next write raises BrokenPipeError and the block's
    exit re-raises what ``raw.write`` raised. If the block raises, its exception propagates
    (whatever reached ``raw`` is for the caller to discard).
    """
    read_fd, write_fd = os.pipe()
    plaintext = os.fdopen(read_fd, "rb")
    target = _Capturing(raw)
    worker = _Worker(lambda: pyrage.encrypt_io(plaintext, target, list(recipients)),
                     plaintext.close)  # a producer still writing then gets BrokenPipeError
    sink = os.fdopen(write_fd, "wb")
    try:
        yield sink
        sink.close()
    except BaseException as exc:
        _close_quietly(sink)
        worker.join()
        if worker.error is not None and isinstance(exc, BrokenPipeError):
            raise (target.error or worker.error) from None
        raise
    worker.join()
    if worker.error is not None:
        raise target.error or worker.error


@contextmanager
def decrypting_reader(
    raw: Readable, identities: Sequence[Identity], artifact: str = "the stream",
    recipients: Sequence[str] | None = None,
) -> Iterator[Readable]:
    """Yield a reader of the plaintext of the age file ``raw`` yields.

    Where the plaintext ends early (a wrong identity, a truncated or altered file), the read
    that reaches its end raises DecryptionError, and so does the block's exit if no read
    got there: a consumer that stops reading early still learns of a failure age found,
    and of none its stopping caused. ``artifact`` names the file in messages;
    ``recipients``, the public keys it was encrypted to if known, tell an altered header
    from one meant for other keys. Errors raised by ``raw`` itself propagate unchanged.
    """
    ours = recipients is not None and bool(set(recipients_of(identities)) & set(recipients))
    reader = _DecryptingReader(raw, identities, artifact, ours)
    try:
        yield reader
    finally:
        reader.close()
    reader.raise_failure()


class _DecryptingReader:
    """The read end of a pipe that a thread fills with the plaintext of an age file."""

    def __init__(
        self, raw: Readable, identities: Sequence[Identity], artifact: str, ours: bool
    ) -> None:
        read_fd, write_fd = os.pipe()
        pipe = os.fdopen(write_fd, "wb")
        self._source, self._sink = _Capturing(raw), _Capturing(pipe)
        self._artifact, self._ours = artifact, ours
        self._plaintext = os.fdopen(read_fd, "rb")
        self._worker = _Worker(
            lambda: pyrage.decrypt_io(self._source, self._sink, list(identities)),
            lambda: _close_quietly(pipe),
        )

    def read(self, size: int = -1) -> bytes:
        data = self._plaintext.read(size)
        if size < 0 or (not data and size != 0):  # at the end of the plaintext
            self._worker.join()
            self.raise_failure()
        return data

    def close(self) -> None:
        """Stop reading (the thread, if still writing, gets BrokenPipeError) and wait."""
        self._plaintext.close()
        self._worker.join()

    def raise_failure(self) -> None:
        """Raise why decryption stopped early, unless it stopped because reading did."""
        error = self._worker.error
        if error is None or self._sink.error is not None:
            return
        if self._source.error is not None:
            raise self._source.error
        raise _decryption_error(error, self._artifact, self._ours)


def _decryption_error(error: BaseException, artifact: str, ours: bool) -> BaseException:
    """age's complaint as one sentence; anything else (a bug) unchanged."""
    if not isinstance(error, (pyrage.DecryptError, OSError)):
        return error
    if _NO_MATCHING_KEY in str(error) and not ours:
        return DecryptionError(f"no identity in the configured identities can decrypt "
                               f"{artifact}: it was encrypted to other recipients")
    return DecryptionError(f"the encrypted artifact {artifact} is truncated or was altered "
                           "(age authentication failed)")


def _close_quietly(stream: IO[bytes]) -> None:
    """Close a pipe end whose reader may be gone (unflushed data is dropped then)."""
    with suppress(BrokenPipeError):
        stream.close()
