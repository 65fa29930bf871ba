"""RQ worker classes that reconcile the catalog when they start and during maintenance.

Use with ``rq worker --worker-class jobs.worker.BackupWorker backups``.
"""

from __future__ import annotations

from rq import SimpleWorker, Worker

from jobs.context import app_context
from jobs.reconcile import reconcile_backups


class ReconcilingMixin:
    connection: object

    def register_birth(self) -> None:
        super().register_birth()  # type: ignore[misc]
        self._reconcile()

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[misc]
        self._reconcile()

    def _reconcile(self) -> None:
        with app_context():
            reconcile_backups(self.connection)  # type: ignore[arg-type]


class BackupWorker(ReconcilingMixin, Worker):
    """The production worker: forks a work horse per job."""


class BackupSimpleWorker(ReconcilingMixin, SimpleWorker):
    """Runs jobs in its own process; for tests and for platforms without fork."""
