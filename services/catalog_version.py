"""The backups list's version: a number that changes in the same transaction as any change
to a backup or one of its copies, so that a reader who finds it unchanged knows the rows are
unchanged. It makes the list's ETags (:func:`etag`): a poll of an unchanged list is
answered without reading or rendering it.

Every session (web, worker, scheduler, CLI) marks itself when it flushes a Backup or a
BackupCopy, or runs an ORM INSERT, UPDATE or DELETE of them, and then bumps the counter as
the last statement before COMMIT (a Core statement on the bare tables would not count: the
app writes the catalog through the ORM). The counter row's lock is taken after every other
lock of the transaction and held only for the commit: concurrent writers wait on it for an
instant and never deadlock over it. A rolled-back change may still bump the counter later: one more
render, never a stale list.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from sqlalchemy import event, select, update
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from services.extensions import db
from services.models import Backup, BackupCopy, CatalogVersion

BACKUPS = "backups"
TRACKED = (Backup, BackupCopy)
_CHANGED = "catalog_version.backups_changed"  # a key of Session.info
MEMO_SIZE = 64  # values kept by memoized(), all dropped when full

T = TypeVar("T")
_memo: dict[tuple[Any, ...], Any] = {}
_memo_lock = threading.Lock()


def current() -> int:
    """The backups list's version (0 for a catalog that has never counted)."""
    return db.session.scalar(
        select(CatalogVersion.version).where(CatalogVersion.name == BACKUPS)) or 0


def etag(*parts: Any) -> str:
    """A weak ETag's value (unquoted) for a response made from the backups list as it is
    now and from ``parts`` (the view, the role, anything else the response depends on);
    read it before the rows, so that a change in between only costs one more render."""
    key = repr((current(), parts)).encode()
    return hashlib.blake2b(key, digest_size=12).hexdigest()


def memoized(key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """``compute()`` (a read of the backups), computed once per version of the list in this
    process for each ``key``: totals over the whole catalog cost one read by primary key
    while nothing changes. A session holding uncommitted backup changes computes afresh
    and keeps nothing. Each catalog (engine) has its own values."""
    if _pending(db.session()):
        return compute()
    full_key = (str(db.engine.url), id(db.engine), current(), key)
    with _memo_lock:
        if full_key in _memo:
            return cast(T, _memo[full_key])
    value = compute()
    with _memo_lock:
        if len(_memo) >= MEMO_SIZE:
            _memo.clear()
        _memo[full_key] = value
    return value


def _pending(session: Session) -> bool:
    """Whether the session holds backup changes not committed yet."""
    return bool(session.info.get(_CHANGED)) or _holds_tracked(session)


def _holds_tracked(session: Session) -> bool:
    return any(isinstance(row, TRACKED) for rows in (session.new, session.dirty, session.deleted)
               for row in rows)


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _flush: UOWTransaction) -> None:
    if _holds_tracked(session):  # new, dirty and deleted still hold what this flush wrote
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_bulk(state: ORMExecuteState) -> None:
    if not state.is_select and any(
            mapper.class_ in TRACKED for mapper in state.all_mappers):
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "before_commit")
def _bump(session: Session) -> None:
    session.flush()  # commit flushes after this event; what it would write counts too
    if session.info.pop(_CHANGED, False):
        session.execute(update(CatalogVersion).where(CatalogVersion.name == BACKUPS)
                        .values(version=CatalogVersion.version + 1)
                        .execution_options(synchronize_session=False))
