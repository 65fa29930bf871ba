"""RQ worker classes that reconcile the catalog when they start and during maintenance.

Use with ``rq worker --worker-class jobs.worker.BackupWorker backups``. They are named
``<host>.<pid>.<queues>`` (``worker_name``), so ``rq info`` says which is which.

A ``BackupWorker`` never leaves a job running without it. Stopped (SIGTERM or SIGINT), it
lets the current job go on for ``STOP_GRACE`` seconds, then sends its work horse SIGTERM;
killed, its horse gets SIGHUP from the kernel (PR_SET_PDEATHSIG). Either signal interrupts
the job with ``WorkerStopped``: the job fails (its catalog row with it) and its pg_dump or
pg_restore is killed on the way out. A horse still there ``HORSE_EXIT_TIMEOUT`` seconds
later is SIGKILLed, and its tool process dies with it (see ``pgbackup.processes``).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterable
from contextlib import suppress
from types import FrameType
from typing import Any

from rq import Queue, SimpleWorker, Worker
from rq.worker import BaseWorker

from jobs.context import app_context
from jobs.reconcile import reconcile_backups
from pgbackup.processes import set_parent_death_signal

STOP_GRACE = 5.0  # seconds a stopping worker lets its current job go on
HORSE_EXIT_TIMEOUT = 5.0  # seconds an interrupted horse has to clean up and exit
# The signals that interrupt a horse's job, and why.
INTERRUPTIONS = {signal.SIGTERM: "its worker is shutting down", signal.SIGHUP: "its worker died"}
# rq's pubsub thread waits up to this long for a message; stopping the worker waits for it.
PUBSUB_WAIT = 0.5


class WorkerStopped(Exception):
    """Raised in a work horse to interrupt its job: its worker stopped or died."""


def worker_name(queues: Iterable[str | Queue] | str | Queue) -> str:
    """``<host>.<pid>.<queues>``, as ``rq info`` and each job's ``worker`` show it, instead
    of RQ's random hex: which machine and process, taking which queues."""
    names = [queues] if isinstance(queues, str | Queue) else queues
    listed = ",".join(queue if isinstance(queue, str) else queue.name for queue in names)
    return f"{socket.gethostname()}.{os.getpid()}.{listed}"


class NamedMixin(BaseWorker):
    """A worker named by worker_name unless given a name (``rq worker --name``)."""

    def __init__(self, queues: Any, name: str | None = None, *args: Any,
                 **kwargs: Any) -> None:
        super().__init__(queues, name or worker_name(queues), *args, **kwargs)


class PromptStopMixin(BaseWorker):
    """A worker whose pubsub thread notices within PUBSUB_WAIT that it should stop."""

    def subscribe(self) -> None:
        """rq's, with a short wait instead of 60 s: rq unsubscribes before it stops the
        thread, which can take the reply and then wait out its whole sleep_time before it
        notices it should stop, while stopping joins it (see rq issue #1613)."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=PUBSUB_WAIT, daemon=True, exception_handler=self._pubsub_exception_handler
        )


class ReconcilingMixin(NamedMixin, PromptStopMixin):
    """Reconciles the catalog at birth and on maintenance passes; stops promptly."""

    def register_birth(self) -> None:
        super().register_birth()
        try:
            self._reconcile()
        except BaseException:
            self.register_death()  # rq would not: its name would stay taken for worker_ttl
            raise

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        self._reconcile()

    def _reconcile(self) -> None:
        with app_context():
            reconcile_backups(self.connection)

class BackupWorker(ReconcilingMixin, Worker):
    """The production worker: forks a work horse per job."""

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        if self.horse_pid:
            timer = threading.Timer(STOP_GRACE, self._interrupt_horse, (self.horse_pid,))
            timer.daemon = True
            timer.start()

    def _interrupt_horse(self, pid: int) -> None:
        if self.horse_pid == pid:
            self.log.warning("Worker %s: interrupting job in horse %s", self.name, pid)
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def setup_work_horse_signals(self) -> None:
        """In the horse: SIGTERM (from the worker) or SIGHUP (from the kernel, when the
        worker's thread that forked it dies) interrupts the job."""
        super().setup_work_horse_signals()
        set_parent_death_signal(signal.SIGHUP, self.pid)
        for sig in INTERRUPTIONS:
            signal.signal(sig, self._interrupt_job)

    def _interrupt_job(self, signum: int, _frame: FrameType | None) -> None:
        for sig in INTERRUPTIONS:
            signal.signal(sig, signal.SIG_IGN)  # once: let the job's cleanup run
        # rq put the horse in a group of its own: this takes any tool it runs in it too
        deadline = threading.Timer(HORSE_EXIT_TIMEOUT, os.killpg, (0, signal.SIGKILL))
        deadline.daemon = True
        deadline.start()
        raise WorkerStopped(f"interrupted: {INTERRUPTIONS[signum]}")


class BackupSimpleWorker(ReconcilingMixin, SimpleWorker):
    """Runs jobs in its own process; for tests and for platforms without fork."""
