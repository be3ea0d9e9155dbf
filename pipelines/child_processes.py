"""Child processes that do not outlive the process they work for.

- ``die_with_parent()``: Linux SIGKILLs the calling process when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``). The service's workers call it in each job's child process.
- ``die_with(pid)``: the calling process SIGKILLs itself as soon as process ``pid`` is gone (a
  thread waits on a pidfd, or polls where there is none). A sweep's local job processes call it
  with the sweep's pid: they are forked by ``multiprocessing``'s fork server, which is not the
  sweep and does not end with it.

Together they make the chain service worker -> job (``dis-eval sweep``) -> the sweep's job
processes end when its head is killed, so a re-queued or re-run job never finds the runs of a
lost attempt still training and holding their run folders' locks. A kill of a job process this
way is like any other SIGKILL: its run resumes from the last checkpoint.
"""

from __future__ import annotations

import os
import signal
import threading
import time

PR_SET_PDEATHSIG = 1
POLL_S = 1.0  # where there is no pidfd (not Linux >= 5.3): how often to look for the process


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux); if the parent is already gone, exit."""
    import ctypes

    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux (no libc.so.6): nothing to ask for
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def die_with(pid: int) -> None:
    """SIGKILL this process as soon as process ``pid`` is gone (at once if it already is)."""
    import select

    def kill_self() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        kill_self()
        return
    except (AttributeError, OSError):  # no pidfd here: poll
        fd = None

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])  # readable once the process has ended
        else:
            while _alive(pid):
                time.sleep(POLL_S)
        kill_self()

    threading.Thread(target=watch, name=f"die-with-{pid}", daemon=True).start()
