"""Child processes that do not outlive their parent (Linux's PR_SET_PDEATHSIG).

The tools run in sessions of their own (so their process groups can be killed whole), out
of reach of a signal sent to their parent's group: without this, killing the parent would
leave them running.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def set_parent_death_signal(sig: int, parent: int) -> None:
    """Have the kernel send ``sig`` to this process when the thread that forked it exits;
    ``parent`` is the pid of its process, which may have exited already (then ``sig`` is
    sent now). A no-op on systems other than Linux."""
    if _prctl is None:
        return
    if _prctl(_PR_SET_PDEATHSIG, sig) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child gets SIGKILL when the
    thread that starts it exits (start it from a thread that outlives it)."""
    parent = os.getpid()
    return lambda: set_parent_death_signal(signal.SIGKILL, parent)
