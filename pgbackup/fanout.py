"""One stream written to several places at once, each failing on its own.

A backup is dumped once and its bytes are written to every destination in the same pass.
A destination that fails (its server stopped, its disk full) drops out with its error while
the others go on; only a failed *required* destination fails the whole write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field

from pgbackup.streams import Writable


@dataclass
class Branch:
    """One destination's sink, opened by ``open`` when the write starts."""

    name: str
    open: Callable[[], AbstractContextManager[Writable]]
    required: bool = True
    error: BaseException | None = field(default=None, init=False)

    @property
    def failed(self) -> bool:
        return self.error is not None


class FanOutError(Exception):
    """A required branch failed: the write as a whole failed."""

    def __init__(self, branch: Branch) -> None:
        super().__init__(f"{branch.name}: {branch.error}")
        self.branch = branch


class _FanOut:
    def __init__(self, live: list[tuple[Branch, Writable]]) -> None:
        self._live = live

    def write(self, data: bytes) -> int:
        for branch, sink in list(self._live):
            try:
                sink.write(data)
            except Exception as exc:
                self._drop(branch, exc)
        return len(data)

    def _drop(self, branch: Branch, exc: Exception) -> None:
        branch.error = exc
        self._live = [(b, s) for b, s in self._live if b is not branch]
        if branch.required:
            raise FanOutError(branch) from exc


@contextmanager
def fan_out(branches: list[Branch]) -> Iterator[Writable]:
    """A writer feeding every branch. On exit each branch's sink is closed on its own (an
    optional branch whose close fails is marked failed); a required branch's failure, in
    writing or closing, raises FanOutError after every sink was closed or aborted."""
    live: list[tuple[Branch, Writable]] = []
    sinks: list[tuple[Branch, AbstractContextManager[Writable]]] = []
    for branch in branches:
        try:
            manager = branch.open()
            live.append((branch, manager.__enter__()))
            sinks.append((branch, manager))
        except Exception as exc:
            branch.error = exc
            if branch.required:
                _abort_all(sinks, exc)
                raise FanOutError(branch) from exc
    try:
        yield _FanOut(live)
    except BaseException as exc:
        _abort_all(sinks, exc)
        raise
    _close_all(sinks)


def _close_all(sinks: list[tuple[Branch, AbstractContextManager[Writable]]]) -> None:
    failed_required: Branch | None = None
    for branch, manager in sinks:
        if branch.failed:
            _abort(manager, branch.error)
            continue
        try:
            manager.__exit__(None, None, None)
        except Exception as exc:
            branch.error = exc
            if branch.required and failed_required is None:
                failed_required = branch
    if failed_required is not None:
        raise FanOutError(failed_required)


def _abort_all(sinks: list[tuple[Branch, AbstractContextManager[Writable]]],
               exc: BaseException) -> None:
    for _branch, manager in sinks:
        _abort(manager, exc)


def _abort(manager: AbstractContextManager[Writable], exc: BaseException | None) -> None:
    """Leave a sink through its error path, so it discards what it has (a partial file, a
    multipart upload); a second failure there changes nothing."""
    error = exc if exc is not None else RuntimeError("aborted")
    with suppress(Exception):  # the branch's own error is already recorded
        manager.__exit__(type(error), error, error.__traceback__)
