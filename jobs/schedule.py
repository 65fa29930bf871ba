"""RQ entry points for schedules: firing a slot, and the retention clean-up."""

from __future__ import annotations

from typing import Any

from jobs.context import app_context
from jobs.progress import tag_job
from services import capture_slots, retention, schedules


def fire_schedule(schedule_id: int, slot: str) -> dict[str, Any]:
    """Fired by rq-scheduler at a schedule's slot: start its backup once."""
    with app_context():
        tag_job(kind="schedule", scheduleId=schedule_id, slot=slot)
        run = schedules.fire(schedule_id, slot)
        if run is None:
            return {"scheduleId": schedule_id, "slot": slot, "outcome": "ignored"}
        schedules.sync_schedules()  # register the next slot at once
        return {"scheduleId": schedule_id, "slot": slot, "outcome": run.outcome,
                "backupId": run.backup_id, "reason": run.reason}


def run_cleanup() -> dict[str, Any]:
    """The daily clean-up: apply every schedule's retention, then drop the replication
    slots that no chain needs any more (retention may just have retired some)."""
    with app_context():
        tag_job(kind="retention")
        deleted = retention.apply()
        return {"deleted": [{"backupId": d.backup_id, "reason": d.reason} for d in deleted],
                "slotsDropped": capture_slots.drop_stale(actor="retention")}
