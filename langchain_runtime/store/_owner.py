"""Who executes a run, and whether that owner is still alive.

An owner is ``"pid@host"``. A store reports a run as live only while its owner is:

* the owner is this process: the run is live while this process executes it (it
  is in :data:`_EXECUTING`, from ``begin_run`` to ``finish_run``);
* another process on this host: ``os.kill(pid, 0)`` says whether it exists, and its
  start time (from ``/proc``, where there is one) tells a reused pid apart;
* another host: the run's heartbeat (written with every commit) is recent.
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import datetime, timedelta

__all__ = ["alive", "local_owner", "process_started", "register", "unregister"]

_HOST = socket.gethostname()
_lock = threading.Lock()
#: ``(store identity, run id)`` of the runs this process is executing.
_EXECUTING: set[tuple[str, str]] = set()


def local_owner() -> str:
    """This process as a run owner: ``"pid@host"``."""
    return f"{os.getpid()}@{_HOST}"


def process_started(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), where ``/proc`` tells."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def register(store: str, run_id: str) -> None:
    with _lock:
        _EXECUTING.add((store, run_id))


def unregister(store: str, run_id: str) -> None:
    with _lock:
        _EXECUTING.discard((store, run_id))


def alive(
    store: str,
    run_id: str,
    owner: str | None,
    started: str | None,
    heartbeat: datetime | None,
    now: datetime,
    stale_after: timedelta,
) -> bool:
    """Whether ``owner`` (with its recorded start time and last heartbeat) still runs it."""
    with _lock:
        if (store, run_id) in _EXECUTING:
            return True
    if owner is None:
        return False
    pid_text, _, host = owner.partition("@")
    if host != _HOST or not pid_text.isdigit():
        return heartbeat is not None and now - heartbeat <= stale_after
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # this process would have registered it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return started is None or process_started(pid) in (None, started)
