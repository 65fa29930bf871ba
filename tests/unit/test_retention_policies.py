"""Retention planning: which backups the next clean-up deletes, and the reason for each."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.retention_policies import (
    BackupFacts,
    CopyDecision,
    CopyFacts,
    Decision,
    Policy,
    plan_copy_trims,
    plan_retention,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def backup(
    id: str,
    age: timedelta | float,
    status: str = "completed",
    verification: str = "unverified",
    parent: str | None = None,
    schedule: int | None = 3,
    origin: str | None = None,
) -> BackupFacts:
    """A backup ``age`` days (or a timedelta) old; scheduled by schedule 3 unless told."""
    age = age if isinstance(age, timedelta) else timedelta(days=age)
    return BackupFacts(
        id=id,
        created=NOW - age,
        status=status,
        verification=verification,
        type="full" if parent is None else "incremental",
        parent_id=parent,
        schedule_id=schedule,
        origin=origin or ("schedule" if schedule is not None else "manual"),
    )


WEEK = {3: Policy(retention_days=7)}
KEEP = False
DELETE = True

CASES = [
    ("expired and within retention", WEEK, None, [
        backup("a", 9),
        backup("b", 3),
    ], [
        ("a", DELETE, "expired: 9 days old, retention 7 days"),
        ("b", KEEP, "kept: within retention (3 days old, retention 7 days)"),
    ]),
    ("all recent backups failed: the last good one stays", WEEK, None, [
        backup("a", 20),
        backup("b", 15),
        backup("c", 5, status="failed"),
        backup("d", 1, status="failed"),
    ], [
        ("a", DELETE, "expired: 20 days old, retention 7 days"),
        ("b", KEEP, "kept: the newest good backup of schedule 3 (keepAtLeast 1), "
                    "although expired (15 days old, retention 7 days)"),
        ("c", KEEP, "kept: failed, kept as evidence while within retention "
                    "(5 days old, retention 7 days)"),
        ("d", KEEP, "kept: failed, kept as evidence while within retention "
                    "(1 day old, retention 7 days)"),
    ]),
    ("keep at least 2", {3: Policy(7, keep_at_least=2)}, None, [
        backup("a", 10),
        backup("b", 9),
        backup("c", 8),
    ], [
        ("a", DELETE, "expired: 10 days old, retention 7 days"),
        ("b", KEEP, "kept: one of the 2 newest good backups of schedule 3 (keepAtLeast 2), "
                    "although expired (9 days old, retention 7 days)"),
        ("c", KEEP, "kept: one of the 2 newest good backups of schedule 3 (keepAtLeast 2), "
                    "although expired (8 days old, retention 7 days)"),
    ]),
    ("keep at least 0: retention alone decides", {3: Policy(7, keep_at_least=0)}, None, [
        backup("a", 10),
        backup("b", 8),
    ], [
        ("a", DELETE, "expired: 10 days old, retention 7 days"),
        ("b", DELETE, "expired: 8 days old, retention 7 days"),
    ]),
    ("corrupted is not good", WEEK, None, [
        backup("a", 10, verification="valid"),
        backup("b", 9, verification="corrupted"),
        backup("c", 2, verification="corrupted"),
        backup("d", 1, status="failed"),
    ], [
        ("a", KEEP, "kept: the newest good backup of schedule 3 (keepAtLeast 1), "
                    "although expired (10 days old, retention 7 days)"),
        ("b", DELETE, "deleted: corrupted and past retention (9 days old, retention 7 days)"),
        ("c", KEEP, "kept: corrupted, kept as evidence while within retention "
                    "(2 days old, retention 7 days)"),
        ("d", KEEP, "kept: failed, kept as evidence while within retention "
                    "(1 day old, retention 7 days)"),
    ]),
    ("failed past retention is deleted", WEEK, None, [
        backup("a", 10, status="failed"),
        backup("b", 1),
    ], [
        ("a", DELETE, "deleted: failed and past retention (10 days old, retention 7 days)"),
        ("b", KEEP, "kept: within retention (1 day old, retention 7 days)"),
    ]),
    ("incremental depends on an old full: the chain is kept", WEEK, None, [
        backup("old", 25),
        backup("full", 20),
        backup("inc1", 15, parent="full"),
        backup("inc2", 10, parent="inc1"),
        backup("inc3", 2, parent="inc2"),
    ], [
        ("old", DELETE, "expired: 25 days old, retention 7 days"),
        ("full", KEEP, "kept: backup inc1 (kept) depends on it"),
        ("inc1", KEEP, "kept: backup inc2 (kept) depends on it"),
        ("inc2", KEEP, "kept: backup inc3 (kept) depends on it"),
        ("inc3", KEEP, "kept: within retention (2 days old, retention 7 days)"),
    ]),
    ("only kept dependents count", WEEK, None, [
        backup("full", 20),
        backup("inc1", 10, parent="full"),
        backup("inc2", 2, parent="full"),
    ], [
        ("full", KEEP, "kept: backup inc2 (kept) depends on it"),
        ("inc1", DELETE, "expired: 10 days old, retention 7 days"),
        ("inc2", KEEP, "kept: within retention (2 days old, retention 7 days)"),
    ]),
    ("several kept dependents are named", WEEK, None, [
        backup("full", 20),
        backup("inc1", 3, parent="full"),
        backup("inc2", 2, parent="full"),
    ], [
        ("full", KEEP, "kept: backups inc1, inc2 (kept) depend on it"),
        ("inc1", KEEP, "kept: within retention (3 days old, retention 7 days)"),
        ("inc2", KEEP, "kept: within retention (2 days old, retention 7 days)"),
    ]),
    ("an incremental of a corrupted full is not good", WEEK, None, [
        backup("good", 30),
        backup("bad", 20, verification="corrupted"),
        backup("inc", 10, parent="bad"),
        backup("orphan", 9, parent="gone"),
    ], [
        ("good", KEEP, "kept: the newest good backup of schedule 3 (keepAtLeast 1), "
                       "although expired (30 days old, retention 7 days)"),
        ("bad", DELETE, "deleted: corrupted and past retention (20 days old, retention 7 days)"),
        ("inc", DELETE, "expired: 10 days old, retention 7 days"),
        ("orphan", DELETE, "expired: 9 days old, retention 7 days"),
    ]),
    ("manual and safety backups are kept without a manual policy", WEEK, None, [
        backup("m", 100, schedule=None, origin="manual"),
        backup("s", 100, schedule=None, origin="safety"),
    ], [
        ("m", KEEP, "kept: manual backup, deleted only by hand"),
        ("s", KEEP, "kept: safety backup, deleted only by hand"),
    ]),
    ("a manual policy treats manual and safety backups as one group", WEEK, Policy(30, 2), [
        backup("m1", 100, schedule=None, origin="manual"),
        backup("s1", 50, schedule=None, origin="safety"),
        backup("m2", 2, schedule=None, origin="manual"),
        backup("a", 9),
    ], [
        ("m1", DELETE, "expired: 100 days old, retention 30 days"),
        ("s1", KEEP, "kept: one of the 2 newest good backups among manual and safety backups "
                     "(keepAtLeast 2), although expired (50 days old, retention 30 days)"),
        ("a", KEEP, "kept: the newest good backup of schedule 3 (keepAtLeast 1), "
                    "although expired (9 days old, retention 7 days)"),
        ("m2", KEEP, "kept: within retention (2 days old, retention 30 days)"),
    ]),
    ("a deleted schedule's backups are kept", WEEK, Policy(1, 0), [
        backup("gone", 100, schedule=9),
        backup("unlinked", 100, schedule=None, origin="schedule"),
    ], [
        ("gone", KEEP, "kept: its schedule (9) was deleted; kept until deleted by hand"),
        ("unlinked", KEEP, "kept: its schedule was deleted; kept until deleted by hand"),
    ]),
    ("active backups are never deleted, nor what they build on", {3: Policy(7, 0)}, None, [
        backup("full", 30),
        backup("q", 30, status="queued"),
        backup("r", 30, status="running", parent="full"),
    ], [
        ("full", KEEP, "kept: backup r (kept) depends on it"),
        ("q", KEEP, "kept: queued"),
        ("r", KEEP, "kept: running"),
    ]),
    ("a kept manual backup keeps its scheduled parent", WEEK, None, [
        backup("full", 30),
        backup("a", 20),
        backup("m", 10, schedule=None, parent="full"),
    ], [
        ("full", KEEP, "kept: backup m (kept) depends on it"),
        ("a", KEEP, "kept: the newest good backup of schedule 3 (keepAtLeast 1), "
                    "although expired (20 days old, retention 7 days)"),
        ("m", KEEP, "kept: manual backup, deleted only by hand"),
    ]),
    ("the retention boundary is kept; ages in words", {3: Policy(7, 0), 4: Policy(1, 0)}, None, [
        backup("past", timedelta(days=7, seconds=1)),
        backup("edge", 7),
        backup("hours", timedelta(days=3, hours=4)),
        backup("day", timedelta(hours=23), schedule=4),
        backup("new", timedelta(minutes=12), schedule=4),
    ], [
        ("past", DELETE, "expired: 7 days old, retention 7 days"),
        ("edge", KEEP, "kept: within retention (7 days old, retention 7 days)"),
        ("hours", KEEP, "kept: within retention (3 days 4 hours old, retention 7 days)"),
        ("day", KEEP, "kept: within retention (23 hours old, retention 1 day)"),
        ("new", KEEP, "kept: within retention (12 minutes old, retention 1 day)"),
    ]),
    ("same creation time: ordered by id", WEEK, None, [
        backup("b", 1),
        backup("c", 1),
        backup("a", 1),
    ], [
        ("a", KEEP, "kept: within retention (1 day old, retention 7 days)"),
        ("b", KEEP, "kept: within retention (1 day old, retention 7 days)"),
        ("c", KEEP, "kept: within retention (1 day old, retention 7 days)"),
    ]),
]


@pytest.mark.parametrize(
    ("policies", "manual_policy", "backups", "expected"),
    [pytest.param(p, m, b, e, id=name) for name, p, m, b, e in CASES],
)
def test_plan_retention(
    policies: dict[int, Policy],
    manual_policy: Policy | None,
    backups: list[BackupFacts],
    expected: list[tuple[str, bool, str]],
) -> None:
    plan = plan_retention(backups, policies, NOW, manual_policy)
    assert plan == [Decision(*row) for row in expected]


@pytest.mark.parametrize("seed", range(5))
def test_order_does_not_depend_on_input_order(seed: int) -> None:
    backups = [
        backup("full", 20), backup("inc", 9, parent="full"), backup("x", 9), backup("y", 9),
        backup("m", 9, schedule=None), backup("f", 8, status="failed"), backup("new", 1),
    ]
    shuffled = random.Random(seed).sample(backups, len(backups))
    assert plan_retention(shuffled, WEEK, NOW) == plan_retention(backups, WEEK, NOW)


def test_a_locked_copy_holds_an_expired_backup_and_its_chain() -> None:
    locked = NOW + timedelta(days=20)
    backups = [
        backup("full", 30),
        backup("inc", 20, parent="full"),
        BackupFacts("locked", NOW - timedelta(days=10), "completed", "valid", "incremental",
                    "inc", 3, "schedule", locked_until=locked),
        backup("unlocked", 9, verification="corrupted"),
        BackupFacts("lock-over", NOW - timedelta(days=9), "failed", "unverified", "full",
                    None, 3, "schedule", locked_until=NOW - timedelta(hours=1)),
        backup("new", 1),
    ]
    plan = {decision.backup_id: decision for decision in plan_retention(backups, WEEK, NOW)}
    assert plan["locked"] == Decision(
        "locked", False, "held: expired: 10 days old, retention 7 days, but a copy is locked "
                         "until 2024-06-21 12:00 UTC; its unlocked copies are deleted", True)
    assert plan["inc"] == Decision("inc", False, "kept: backup locked (kept) depends on it")
    assert not plan["full"].delete
    assert plan["unlocked"].delete and not plan["unlocked"].trim
    assert plan["lock-over"].delete  # a lock that has ended holds nothing


def copy(backup_id: str, age: float, destination: str = "local", stored: int = 2,
         good: bool = True, locked_days: float | None = None) -> CopyFacts:
    locked = NOW + timedelta(days=locked_days) if locked_days is not None else None
    return CopyFacts(backup_id, destination, NOW - timedelta(days=age), good, stored, locked)


def test_a_destinations_retention_trims_its_copies_but_never_a_last_one() -> None:
    copies = [
        copy("a", 40), copy("a", 40, "offsite"),
        copy("b", 30, stored=1),
        copy("c", 20, locked_days=3), copy("c", 20, "offsite"),
        copy("d", 10, good=False),
        copy("e", 9), copy("e", 9, "offsite"),
        copy("f", 2),
    ]
    plan = plan_copy_trims(copies, {"local": Policy(7, keep_at_least=2)}, NOW)
    assert [(d.backup_id, d.delete) for d in plan] == [
        ("f", False), ("e", False), ("d", True), ("c", False), ("b", False), ("a", True)]
    reasons = {d.backup_id: d.reason for d in plan}
    assert reasons["f"] == "kept: within retention (2 days old, retention 7 days at local)"
    assert reasons["e"].startswith("kept: one of the 2 newest good copies here")
    assert reasons["d"] == "expired: 10 days old, retention 7 days at local"
    assert reasons["c"].startswith("kept: locked until 2024-06-04 12:00 UTC")
    assert reasons["b"].startswith("kept: its backup's last stored copy")
    assert all(d.destination == "local" for d in plan)  # offsite has no policy


def test_two_expired_copies_of_one_backup_do_not_both_go() -> None:
    copies = [copy("a", 40, "nas"), copy("a", 40, "offsite"), copy("b", 1, "nas"),
              copy("b", 1, "offsite")]
    week = Policy(7, keep_at_least=0)
    plan = plan_copy_trims(copies, {"nas": week, "offsite": week}, NOW)
    assert [d for d in plan if d.backup_id == "a"] == [
        CopyDecision("a", "nas", True, "expired: 40 days old, retention 7 days at nas"),
        CopyDecision("a", "offsite", False, "kept: its backup's last stored copy: the "
                     "backup's own retention decides (40 days old, retention 7 days at offsite)"),
    ]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        plan_retention([backup("a", 1), backup("a", 2)], WEEK, NOW)
    with pytest.raises(ValueError, match="aware"):
        plan_retention([backup("a", 1)], WEEK, NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="retention_days"):
        Policy(retention_days=0)
    with pytest.raises(ValueError, match="keep_at_least"):
        Policy(retention_days=7, keep_at_least=-1)


@st.composite
def catalogs(draw: st.DrawFn) -> list[BackupFacts]:
    """Backups of schedules 1 and 2 (with policies), 3 (deleted) and manual ones, where an
    incremental's parent is an earlier backup or a missing one."""
    backups: list[BackupFacts] = []
    for i in range(draw(st.integers(0, 20))):
        schedule = draw(st.sampled_from([1, 2, 3, None]))
        parents = [None, "missing", *(b.id for b in backups)]
        backups.append(backup(
            f"b{i:02d}",
            timedelta(hours=draw(st.integers(0, 60 * 24))),
            status=draw(st.sampled_from(["completed", "completed", "failed", "queued", "running"])),
            verification=draw(st.sampled_from(["unverified", "valid", "corrupted"])),
            parent=draw(st.sampled_from(parents)),
            schedule=schedule,
            origin=draw(st.sampled_from(["manual", "safety", "schedule"])) if schedule is None
            else "schedule",
        ))
    return backups


policies_strategy = st.builds(Policy, st.integers(1, 30), st.integers(1, 4))


def restorable(facts: BackupFacts, by_id: dict[str, BackupFacts]) -> bool:
    intact = facts.status == "completed" and facts.verification != "corrupted"
    if not intact or facts.parent_id is None:
        return intact
    return facts.parent_id in by_id and restorable(by_id[facts.parent_id], by_id)


def group_of(facts: BackupFacts, manual_policy: Policy | None) -> int | str | None:
    if facts.schedule_id in (1, 2):
        return facts.schedule_id
    if facts.schedule_id is None and facts.origin != "schedule" and manual_policy:
        return None
    return "no policy"


@given(catalogs(), policies_strategy, policies_strategy, st.none() | policies_strategy)
def test_retention_properties(
    backups: list[BackupFacts], one: Policy, two: Policy, manual_policy: Policy | None
) -> None:
    policies = {1: one, 2: two}
    plan = plan_retention(backups, policies, NOW, manual_policy)
    by_id = {b.id: b for b in backups}
    deleted = {d.backup_id for d in plan if d.delete}

    # exactly one decision per backup, in (created, id) order
    assert [d.backup_id for d in plan] == [
        b.id for b in sorted(backups, key=lambda b: (b.created, b.id))
    ]
    for decision in plan:
        facts = by_id[decision.backup_id]
        group = group_of(facts, manual_policy)
        assert decision.reason.startswith(("expired: ", "deleted: ") if decision.delete
                                          else ("kept: ",))
        if decision.delete:
            assert facts.status not in ("queued", "running")
            assert group != "no policy"
            policy = manual_policy if group is None else policies[group]
            assert facts.created < NOW - timedelta(days=policy.retention_days)
        else:  # no kept backup has a deleted ancestor
            link = facts.parent_id
            while link in by_id:
                assert link not in deleted
                link = by_id[link].parent_id

    # the keep_at_least newest good backups of every group survive
    groups = {1: one, 2: two} | ({None: manual_policy} if manual_policy else {})
    for group, policy in groups.items():
        good = [b.id for b in backups
                if group_of(b, manual_policy) == group and restorable(b, by_id)]
        kept_good = [i for i in good if i not in deleted]
        assert len(kept_good) >= min(policy.keep_at_least, len(good))

    # a second clean-up right after the first deletes nothing more
    remaining = [b for b in backups if b.id not in deleted]
    assert not any(d.delete for d in plan_retention(remaining, policies, NOW, manual_policy))
