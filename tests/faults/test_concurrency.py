"""Simultaneous requests: threads released together by a barrier, each with its own client.

- Four restores at once (over the protected database, or into four new databases):
  restores run one at a time, so exactly one is accepted (202) and the others get 409.
- A backup and a restore over the protected database at once: they never run together,
  so exactly one is accepted and the other gets 409.
Then the accepted job runs, and the invariants must hold (for a completed restore over
the database: the database matches the backup, its safety backup is there and valid).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from services.models import Backup, Restore
from tests.faults.helpers import Fault, change_the_database, new_database_name, single_line
from tests.faults.invariants import assert_invariants


def at_once(app: Any, token: str, requests: list[tuple[str, dict]]) -> list[Any]:
    """POST each (path, body) from its own thread and client, released together."""
    barrier = threading.Barrier(len(requests))
    responses: list[Any] = [None] * len(requests)

    def send(index: int, path: str, body: dict) -> None:
        client = app.test_client()
        barrier.wait()
        responses[index] = client.post(path, json=body,
                                       headers={"Authorization": f"Bearer {token}"})

    threads = [threading.Thread(target=send, args=(i, path, body))
               for i, (path, body) in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(response is not None for response in responses), "a request never returned"
    return responses


def describe(responses: list[Any]) -> str:
    return "; ".join(f"{r.status_code} {single_line(str(r.get_json()))[:120]}"
                     for r in responses)


RESTORE_BODIES: dict[str, Callable[[str], dict]] = {
    "overwrite": lambda backup_id: {"backupId": backup_id, "confirmDataLoss": True},
    "new-database": lambda backup_id: {"backupId": backup_id,
                                       "targetDatabase": new_database_name()},
}


@pytest.mark.parametrize("mode", list(RESTORE_BODIES))
def test_four_simultaneous_restores_one_accepted(fault: Fault, api_token: str,
                                                 mode: str) -> None:
    backup_id = fault.completed_backup()
    if mode == "overwrite":
        change_the_database(fault.protected_url)
        fault.remember_protected()
    responses = at_once(fault.app, api_token, [
        ("/api/system/backup/restore", RESTORE_BODIES[mode](backup_id)) for _ in range(4)])
    codes = sorted(r.status_code for r in responses)
    fault.expect(codes == [202, 409, 409, 409],
                 f"four simultaneous {mode} restores got {codes}: {describe(responses)}")
    fault.settle()
    for response in responses:
        if response.status_code == 202:
            row = fault.row(Restore, response.get_json()["restoreId"])
            fault.expect(row.status == "completed",
                         f"the accepted restore {row.id} is {row.status}: "
                         f"{single_line(row.error)}")
    assert_invariants(fault)


def test_backup_and_overwrite_restore_at_once(fault: Fault, api_token: str) -> None:
    backup_id = fault.completed_backup()
    change_the_database(fault.protected_url)
    fault.remember_protected()
    backup_response, restore_response = at_once(fault.app, api_token, [
        ("/api/system/backup", {"type": "full"}),
        ("/api/system/backup/restore", {"backupId": backup_id, "confirmDataLoss": True})])
    codes = sorted([backup_response.status_code, restore_response.status_code])
    fault.expect(codes == [202, 409],
                 "a backup and a restore over the database at once got "
                 f"{describe([backup_response, restore_response])}")
    fault.settle()
    if backup_response.status_code == 202:
        row = fault.row(Backup, backup_response.get_json()["backupId"])
        fault.expect(row.status == "completed" or restore_response.status_code == 202,
                     f"the accepted backup is {row.status}: {single_line(row.error)}")
    if restore_response.status_code == 202:
        row = fault.row(Restore, restore_response.get_json()["restoreId"])
        fault.expect(row.status == "completed" or backup_response.status_code == 202,
                     f"the accepted restore is {row.status}: {single_line(row.error)}")
    assert_invariants(fault)
