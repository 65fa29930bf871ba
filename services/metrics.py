"""Prometheus metrics, read from the catalog and from RQ at scrape time.

Nothing is counted in process memory: every gunicorn worker, and any process that reads
the same catalog and Redis, reports the same numbers. The collector needs an app context,
which the ``/metrics`` view provides.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import product
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, SQLColumnExpression, case, func, select
from sqlalchemy.orm import QueryableAttribute

from jobs.queues import QUEUES, queue
from pgbackup import __version__
from services import capture_slots, destination_health, destinations
from services.errors import CatalogError
from services.extensions import db
from services.models import (
    BACKUP_TYPES,
    RESTORE_MODES,
    STATUSES,
    VERIFICATIONS,
    VERIFY_LEVELS,
    Backup,
    BackupCopy,
    Restore,
    Schedule,
)

DURATION_BUCKETS = (1, 5, 30, 60, 300, 900, 1800, 3600, 7200)  # seconds; +Inf is added

VERIFICATION_RESULTS = ("valid", "corrupted")
QUEUE_STATES = ("queued", "started", "failed", "scheduled")
COPY_STATUSES = ("pending", "stored", "retrying", "failed")

Values = dict[tuple[str, ...], float]


def build_registry() -> CollectorRegistry:
    """A registry of its own for one app, holding only the catalog collector."""
    registry = CollectorRegistry()
    registry.register(CatalogCollector())
    return registry


class CatalogCollector:
    """Builds every series afresh on each scrape."""

    def collect(self) -> Iterator[Metric]:
        yield InfoMetricFamily("pgbackup", "The backup manager's version.",
                               value={"version": __version__})
        yield from backup_metrics()
        yield from success_metrics()
        yield from duration_metrics()
        yield from verification_metrics()
        yield from restore_metrics()
        yield from queue_metrics()
        yield from destination_metrics()
        yield from slot_metrics()


# ---- the series ---------------------------------------------------------------------

def backup_metrics() -> Iterator[Metric]:
    labels = ("type", "status")
    zeros = _zeros(BACKUP_TYPES, STATUSES)
    yield _gauge("pgbackup_backups", "Backups in the catalog.", labels,
                 _grouped(zeros, Backup.type, Backup.status))
    yield _gauge("pgbackup_backup_bytes", "Total size of the backups' artifacts in bytes.",
                 labels, _grouped(zeros, Backup.type, Backup.status,
                                  value=func.coalesce(func.sum(Backup.size), 0)))
    yield _gauge("pgbackup_backups_by_verification",
                 "Backups in the catalog by verification state.", ("verification",),
                 _grouped(_zeros(VERIFICATIONS), Backup.verification))


def success_metrics() -> Iterator[Metric]:
    last_by_type = db.session.execute(
        select(Backup.type, func.max(Backup.finished_at))
        .where(Backup.status == "completed").group_by(Backup.type))
    yield _gauge("pgbackup_last_success_timestamp_seconds",
                 "Finish time of the newest completed backup of each type that has one.",
                 ("type",), {(kind,): _timestamp(at) for kind, at in last_by_type})
    last_by_schedule = db.session.execute(
        select(Schedule.name, func.max(Backup.finished_at))
        .outerjoin(Backup, (Backup.schedule_id == Schedule.id) & (Backup.status == "completed"))
        .where(Schedule.enabled).group_by(Schedule.id, Schedule.name))
    yield _gauge("pgbackup_schedule_last_success_timestamp_seconds",
                 "Finish time of the newest completed backup of each enabled schedule "
                 "(0 if it has none yet).",
                 ("schedule",), {(name,): _timestamp(at) for name, at in last_by_schedule})


def duration_metrics() -> Iterator[Metric]:
    completed = Backup.status == "completed"
    yield _histogram("pgbackup_backup_duration_seconds",
                     "Durations of the completed backups in the catalog.",
                     Backup.type, BACKUP_TYPES, Backup.duration_ms, completed)
    newest = (select(Backup.type, func.max(Backup.finished_at).label("finished_at"))
              .where(completed).group_by(Backup.type).subquery())
    last = db.session.execute(
        select(Backup.type, Backup.duration_ms).where(completed).join(
            newest, (Backup.type == newest.c.type) & (Backup.finished_at == newest.c.finished_at)))
    yield _gauge("pgbackup_last_backup_duration_seconds",
                 "Duration of the newest completed backup of each type that has one.",
                 ("type",), {(kind,): (ms or 0) / 1000 for kind, ms in last})


def verification_metrics() -> Iterator[Metric]:
    result = Backup.verification_result
    level = result["level"].as_string()
    outcome = case((result["isValid"].as_boolean(), "valid"), else_="corrupted")
    yield _gauge("pgbackup_verifications",
                 "Backups by the level and result of their latest verification.",
                 ("level", "result"),
                 _grouped(_zeros(VERIFY_LEVELS, VERIFICATION_RESULTS), level, outcome,
                          where=result.is_not(None)))


def restore_metrics() -> Iterator[Metric]:
    yield _gauge("pgbackup_restores", "Restores in the catalog.", ("mode", "status"),
                 _grouped(_zeros(RESTORE_MODES, STATUSES), Restore.mode, Restore.status))
    yield _histogram("pgbackup_restore_duration_seconds",
                     "Durations of the completed restores in the catalog.",
                     Restore.mode, RESTORE_MODES, Restore.duration_ms,
                     Restore.status == "completed")


def queue_metrics() -> Iterator[Metric]:
    """Job counts per RQ queue and state; without Redis, only ``pgbackup_redis_up 0``."""
    try:
        depths = _queue_depths()
    except RedisError:
        depths = None
    yield GaugeMetricFamily("pgbackup_redis_up", "Whether Redis answered this scrape (1) "
                            "or not (0).", value=0 if depths is None else 1)
    if depths is not None:
        yield _gauge("pgbackup_queue_jobs", "Jobs in each RQ queue and registry.",
                     ("queue", "state"), depths)


def _queue_depths() -> Values:
    """Registries are read without RQ's clean-up: a scrape changes nothing."""
    depths: Values = {}
    for name in QUEUES:
        rq_queue = queue(name)
        depths[name, "queued"] = rq_queue.count
        registries = (rq_queue.started_job_registry, rq_queue.failed_job_registry,
                      rq_queue.scheduled_job_registry)
        for state, registry in zip(QUEUE_STATES[1:], registries, strict=True):
            depths[name, state] = registry.get_job_count(cleanup=False)
    return depths


def destination_metrics() -> Iterator[Metric]:
    """Per destination (the configured ones, and any its copies still name)."""
    named = {row.name for row in destinations.list_destinations()}
    named |= set(db.session.scalars(select(BackupCopy.destination).distinct()))
    health = destination_health.health_of(sorted(named))
    yield _gauge("pgbackup_destination_copies", "Backup copies at each destination, by "
                 "status.", ("destination", "status"),
                 _grouped(_zeros(named, COPY_STATUSES), BackupCopy.destination,
                          BackupCopy.status))
    yield _gauge("pgbackup_destination_bytes_stored", "Bytes of the copies stored at each "
                 "destination.", ("destination",),
                 {(name,): float(h.bytes_stored) for name, h in health.items()})
    yield _gauge("pgbackup_destination_last_good_copy_timestamp_seconds",
                 "When each destination last stored a copy (0 if never).", ("destination",),
                 {(name,): _timestamp(h.last_good_at) for name, h in health.items()})
    yield _gauge("pgbackup_destination_consecutive_failures",
                 "Copies to each destination that failed since it last stored one.",
                 ("destination",),
                 {(name,): float(h.consecutive_failures) for name, h in health.items()})


def slot_metrics() -> Iterator[Metric]:
    """The app's replication slots on the protected database (services/capture_slots.py);
    none when it cannot be asked (the health check's database check says why)."""
    try:
        slots = capture_slots.slots_report()
    except CatalogError:
        return
    yield _gauge("pgbackup_replication_slot_retained_wal_bytes", "WAL the database server "
                 "keeps for each of the app's replication slots, in bytes.", ("slot",),
                 {(slot.name,): float(slot.retained_wal_bytes or 0) for slot in slots})
    yield _gauge("pgbackup_replication_slot_live", "Whether each of the app's replication "
                 "slots is live (1: its chain continues from it) or stale (0).", ("slot",),
                 {(slot.name,): float(slot.live) for slot in slots})


# ---- helpers ------------------------------------------------------------------------

def _zeros(*label_values: Iterable[str]) -> Values:
    """Every known label combination at 0, so a series exists before its first event."""
    return dict.fromkeys(product(*label_values), 0.0)


def _grouped(zeros: Values, *columns: SQLColumnExpression[Any],
             value: ColumnElement[Any] | None = None,
             where: ColumnElement[bool] | None = None) -> Values:
    """``value`` (default: the row count) per combination of ``columns``, over ``zeros``."""
    query = select(*columns, func.count() if value is None else value).group_by(*columns)
    if where is not None:
        query = query.where(where)
    values = dict(zeros)
    for *key, amount in db.session.execute(query):
        values[tuple(key)] = float(amount)
    return values


def _gauge(name: str, documentation: str, labels: Sequence[str],
           values: Mapping[tuple[str, ...], float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(key, value)
    return family


def _histogram(name: str, documentation: str, label: QueryableAttribute[str],
               known: Sequence[str], duration_ms: QueryableAttribute[int | None],
               where: ColumnElement[bool]) -> HistogramMetricFamily:
    """A histogram per value of ``label``, its buckets counted by the database."""
    below = [func.sum(case((duration_ms <= bound * 1000, 1), else_=0))
             for bound in DURATION_BUCKETS]
    rows = db.session.execute(
        select(label, func.count(), func.coalesce(func.sum(duration_ms), 0), *below)
        .where(where, duration_ms.is_not(None)).group_by(label))
    found = {key: (count, total_ms, cumulative) for key, count, total_ms, *cumulative in rows}
    family = HistogramMetricFamily(name, documentation, labels=[label.key])
    for key in sorted({*known, *found}):
        count, total_ms, cumulative = found.get(key, (0, 0, [0] * len(DURATION_BUCKETS)))
        buckets = [(floatToGoString(bound), n) for bound, n in zip(
            DURATION_BUCKETS, cumulative, strict=True)]
        family.add_metric([key], [*buckets, ("+Inf", count)], total_ms / 1000)
    return family


def _timestamp(value: datetime | None) -> float:
    """Catalog datetimes are naive UTC; a missing one is 0."""
    return value.replace(tzinfo=UTC).timestamp() if value else 0.0
