"""What the next clean-up deletes, and why: pure planning over plain facts about backups.

Rules, per group of backups (one group per schedule; manual and safety backups form one
group of their own when a ``manual_policy`` is given):

- Queued and running backups are never deleted.
- A backup is *good* when it completed and is not known to be corrupted (unverified counts),
  and, for an incremental, its parent is good too (a broken chain restores nothing).
- The ``keep_at_least`` newest good backups stay whatever their age, so when every recent
  backup failed, the last good ones are not pruned.
- Other backups are kept within ``retention_days`` and deleted once older (created before
  ``now - retention_days``). That includes failed and corrupted ones: they restore nothing,
  but they stay within the retention as evidence of what went wrong.
- Backups of a schedule missing from ``policies`` (the schedule was deleted), and manual
  and safety backups without a ``manual_policy``, are kept until deleted by hand.
- A backup that would be deleted while one of its copies is locked (S3 Object Lock) is
  held until the lock ends: that is not a failure, and its unlocked copies go now
  (``Decision.trim``).
- Finally, a backup is never deleted while a kept backup depends on it through
  ``parent_id``: a kept incremental keeps its full and every incremental in between.

Per destination (:func:`plan_copy_trims`), a destination's own retention removes its
copies earlier than the backup goes, but never a backup's last stored copy, never a
locked one, and never one of the destination's ``keep_at_least`` newest good copies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

ACTIVE_STATUSES = ("queued", "running")


@dataclass(frozen=True)
class BackupFacts:
    """What retention needs to know about one backup; ``created`` is an aware datetime."""

    id: str
    created: datetime
    status: str  # queued | running | completed | failed
    verification: str  # unverified | valid | corrupted
    type: str  # full | incremental | schema-only
    parent_id: str | None
    schedule_id: int | None
    origin: str  # manual | safety | schedule
    locked_until: datetime | None = None  # the latest lock among its stored copies


@dataclass(frozen=True)
class Policy:
    """Keep backups for ``retention_days``, and always the ``keep_at_least`` newest good ones."""

    retention_days: int
    keep_at_least: int = 1

    def __post_init__(self) -> None:
        if self.retention_days < 1:
            raise ValueError(f"retention_days must be at least 1, not {self.retention_days}")
        if self.keep_at_least < 0:
            raise ValueError(f"keep_at_least must be 0 or more, not {self.keep_at_least}")


@dataclass(frozen=True)
class Decision:
    """Whether the clean-up deletes one backup, and a sentence saying why."""

    backup_id: str
    delete: bool
    reason: str
    trim: bool = False  # kept for its locked copies only: delete the unlocked ones


@dataclass(frozen=True)
class _Group:
    name: str  # "of schedule 3", "among manual and safety backups"
    policy: Policy


def plan_retention(
    backups: Iterable[BackupFacts],
    policies: Mapping[int, Policy],
    now: datetime,
    manual_policy: Policy | None = None,
) -> list[Decision]:
    """One Decision per backup, ordered by creation time, then id.

    ``policies`` maps schedule ids to their Policy. Pass every backup in the catalog: a
    ``parent_id`` that is not among them counts as a missing parent.
    """
    ordered = _checked(list(backups), now)
    by_id = {b.id: b for b in ordered}
    good = {b.id for b in ordered if _restorable(b, by_id)}
    decisions = {b.id: Decision(b.id, False, _hand_reason(b)) for b in ordered}
    for group, newest_first in _groups(ordered, policies, manual_policy):
        settled = [b for b in newest_first if b.status not in ACTIVE_STATUSES]
        newest_good = [b.id for b in settled if b.id in good]
        protected = set(newest_good[: group.policy.keep_at_least])
        for backup in settled:
            decisions[backup.id] = _decide(backup, group, backup.id in protected, now)
    _keep_dependencies(decisions, ordered)
    return [decisions[b.id] for b in ordered]


def _checked(backups: list[BackupFacts], now: datetime) -> list[BackupFacts]:
    """The backups ordered by creation time, then id, once ids are unique, datetimes aware."""
    if len({b.id for b in backups}) != len(backups):
        raise ValueError("backup ids must be unique")
    if now.utcoffset() is None or any(b.created.utcoffset() is None for b in backups):
        raise ValueError("now and created must be aware datetimes, e.g. datetime.now(UTC)")
    return sorted(backups, key=lambda b: (b.created, b.id))


def _intact(backup: BackupFacts) -> bool:
    """Completed, and neither found corrupted nor with its files gone (models.UNRESTORABLE)."""
    return backup.status == "completed" and backup.verification not in ("corrupted", "missing")


def _restorable(backup: BackupFacts, by_id: Mapping[str, BackupFacts]) -> bool:
    """Intact, and so is every backup it depends on (a missing parent breaks the chain)."""
    seen: set[str] = set()
    link: BackupFacts | None = backup
    while link is not None and _intact(link) and link.id not in seen:
        if link.parent_id is None:
            return True
        seen.add(link.id)
        link = by_id.get(link.parent_id)
    return False


def _hand_reason(backup: BackupFacts) -> str:
    """Why a backup is kept when no policy applies to it (or it is still active)."""
    if backup.status in ACTIVE_STATUSES:
        return f"kept: {backup.status}"
    if backup.schedule_id is not None or backup.origin == "schedule":
        schedule = "" if backup.schedule_id is None else f" ({backup.schedule_id})"
        return f"kept: its schedule{schedule} was deleted; kept until deleted by hand"
    return f"kept: {backup.origin} backup, deleted only by hand"


def _groups(
    ordered: list[BackupFacts], policies: Mapping[int, Policy], manual_policy: Policy | None
) -> list[tuple[_Group, list[BackupFacts]]]:
    """The backups that a policy applies to, per group, newest first."""
    groups: dict[int | None, tuple[_Group, list[BackupFacts]]] = {}
    for backup in reversed(ordered):
        key = backup.schedule_id
        if key is not None and key in policies:
            group = _Group(f"of schedule {key}", policies[key])
        elif key is None and backup.origin != "schedule" and manual_policy is not None:
            group = _Group("among manual and safety backups", manual_policy)
        else:
            continue
        groups.setdefault(key, (group, []))[1].append(backup)
    return list(groups.values())


def _decide(backup: BackupFacts, group: _Group, protected: bool, now: datetime) -> Decision:
    """The decision for a finished backup of a group, before dependencies are considered."""
    policy = group.policy
    age = max(now - backup.created, timedelta(0))
    ages = f"{_age(age)} old, retention {_plural(policy.retention_days, 'day')}"
    expired = backup.created < now - timedelta(days=policy.retention_days)
    flaw = None if _intact(backup) else _flaw(backup)
    if not expired:
        why = f"{flaw}, kept as evidence while within retention" if flaw else "within retention"
        return Decision(backup.id, False, f"kept: {why} ({ages})")
    if protected:
        newest = _newest(policy.keep_at_least, group)
        return Decision(backup.id, False, f"kept: {newest}, although expired ({ages})")
    reason = f"deleted: {flaw} and past retention ({ages})" if flaw else f"expired: {ages}"
    if backup.locked_until is not None and backup.locked_until > now:
        until = backup.locked_until.strftime("%Y-%m-%d %H:%M UTC")
        return Decision(backup.id, False, f"held: {reason}, but a copy is locked until "
                                          f"{until}; its unlocked copies are deleted", True)
    return Decision(backup.id, True, reason)


def _flaw(backup: BackupFacts) -> str:
    return "corrupted" if backup.status == "completed" else backup.status


def _newest(keep: int, group: _Group) -> str:
    which = "the newest good backup" if keep == 1 else f"one of the {keep} newest good backups"
    return f"{which} {group.name} (keepAtLeast {keep})"


def _keep_dependencies(decisions: dict[str, Decision], ordered: list[BackupFacts]) -> None:
    """Keep every ancestor of a kept backup, naming the kept backups that depend on it."""
    parents = {b.id: b.parent_id for b in ordered}
    kept = {i for i, decision in decisions.items() if not decision.delete}
    pending = list(kept)
    while pending:
        parent = parents[pending.pop()]
        if parent in decisions and parent not in kept:
            kept.add(parent)
            pending.append(parent)
    dependents: dict[str, list[str]] = {}
    for backup in ordered:
        if backup.id in kept and backup.parent_id is not None:
            dependents.setdefault(backup.parent_id, []).append(backup.id)
    for i, decision in decisions.items():
        if decision.delete and i in kept:
            decisions[i] = Decision(i, False, _dependents_reason(dependents[i]))


def _dependents_reason(children: list[str]) -> str:
    if len(children) == 1:
        return f"kept: backup {children[0]} (kept) depends on it"
    return f"kept: backups {', '.join(children)} (kept) depend on it"


def _age(age: timedelta) -> str:
    """The age in words: 9 days, 3 days 4 hours, 5 hours, 12 minutes."""
    hours = age.seconds // 3600
    if age.days:
        return _plural(age.days, "day") + (f" {_plural(hours, 'hour')}" if hours else "")
    if hours:
        return _plural(hours, "hour")
    return _plural(age.seconds // 60, "minute")


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class CopyFacts:
    """One stored copy, for its destination's retention; datetimes are aware."""

    backup_id: str
    destination: str
    created: datetime  # the backup's
    good: bool  # its backup is restorable (see plan_retention)
    copies_stored: int  # how many stored copies its backup has, this one included
    locked_until: datetime | None = None


@dataclass(frozen=True)
class CopyDecision:
    backup_id: str
    destination: str
    delete: bool
    reason: str


def plan_copy_trims(copies: Iterable[CopyFacts], policies: Mapping[str, Policy],
                    now: datetime) -> list[CopyDecision]:
    """A decision per stored copy at a destination that has a policy, newest first per
    destination. Two expired copies of one backup never both go: the second is its last."""
    by_destination: dict[str, list[CopyFacts]] = {}
    remaining: dict[str, int] = {}
    for copy in sorted(copies, key=lambda c: (c.created, c.backup_id), reverse=True):
        remaining[copy.backup_id] = copy.copies_stored
        if copy.destination in policies:
            by_destination.setdefault(copy.destination, []).append(copy)
    decisions = []
    for destination, newest_first in sorted(by_destination.items()):
        policy = policies[destination]
        protected = [c.backup_id for c in newest_first if c.good][: policy.keep_at_least]
        for copy in newest_first:
            decision = _decide_copy(copy, policy, copy.backup_id in protected,
                                    remaining[copy.backup_id], now)
            remaining[copy.backup_id] -= decision.delete
            decisions.append(decision)
    return decisions


def _decide_copy(copy: CopyFacts, policy: Policy, protected: bool, remaining: int,
                 now: datetime) -> CopyDecision:
    ages = (f"{_age(max(now - copy.created, timedelta(0)))} old, retention "
            f"{_plural(policy.retention_days, 'day')} at {copy.destination}")
    keep = None
    if copy.created >= now - timedelta(days=policy.retention_days):
        keep = "within retention"
    elif protected:
        keep = f"one of the {policy.keep_at_least} newest good copies here (keepAtLeast)"
    elif remaining <= 1:
        keep = "its backup's last stored copy: the backup's own retention decides"
    elif copy.locked_until is not None and copy.locked_until > now:
        keep = f"locked until {copy.locked_until.strftime('%Y-%m-%d %H:%M UTC')}"
    if keep:
        return CopyDecision(copy.backup_id, copy.destination, False, f"kept: {keep} ({ages})")
    return CopyDecision(copy.backup_id, copy.destination, True, f"expired: {ages}")
