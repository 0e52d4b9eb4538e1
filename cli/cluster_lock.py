"""The cluster directory's lock: held by each command that starts or stops the directory's
nodes (`cluster up`, `down`, `restart`, `kill`) for as long as it runs.

Without it two such commands at once race on the nodes' pid files: both see a node not
running, both start it, and one process is orphaned or its pid file names the wrong one. The
second command fails at once instead, naming the command that holds the lock, rather than
waiting for it unseen. Commands that only read (status, logs, blocks) take no lock.

The lock is an exclusive flock on DIR/cluster.lock. The kernel lets go of it when its holder
exits, however it exits (Ctrl-C, SIGKILL, a crash), so a dead holder never leaves it stale.
The file holds the holder's pid and command, for the message a refused command prints; it is
emptied on release but never removed: a command that opened the file just before it went
would lock a file that no longer guards anything. Its descriptor is not inheritable (PEP 446)
and node processes are started with close_fds, so a node that outlives its `cluster up` does
not keep holding the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.layout import ClusterDir, LayoutError
from cli.process import is_alive


@dataclass(frozen=True, slots=True, kw_only=True)
class LockHolder:
    """Who holds a cluster directory's lock, as it recorded itself."""

    pid: int
    command: str  # as a user would type it, e.g. "millchain cluster up"


class ClusterBusyError(LayoutError):
    """Another process holds the cluster directory's lock."""

    def __init__(self, path: Path, holder: LockHolder | None) -> None:
        self.path = path
        self.holder = holder
        who = (
            "another process (it has not said which yet)"
            if holder is None
            else f"`{holder.command}` (pid {holder.pid})"
        )
        super().__init__(
            f"{path.parent} is busy: {who} holds its lock ({path}) while it starts or stops "
            "nodes; nothing was done. Try again once it has finished, or stop it."
        )


@contextlib.contextmanager
def holding_cluster_lock(layout: ClusterDir, command: str) -> Iterator[Path]:
    """Within: this process holds `layout`'s lock, recorded as held by `command`.
    ClusterBusyError, and nothing changed, if another process holds it."""
    path = layout.lock_file
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise LayoutError(f"cannot open the cluster's lock file {path}: {exc}") from exc
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClusterBusyError(path, read_holder(path)) from None
        except OSError as exc:  # no flock on this file system, say
            raise LayoutError(f"cannot lock the cluster's lock file {path}: {exc}") from exc
        record = json.dumps({"pid": os.getpid(), "command": command}) + "\n"
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, record.encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(descriptor, 0)  # a holder that dies keeps its record: see read_holder
    finally:
        os.close(descriptor)  # releases the lock


def read_holder(path: Path) -> LockHolder | None:
    """The holder a lock file names, or None when it names no live process: the holder has
    not written its record yet (the record left there is empty, or a dead holder's)."""
    try:
        record: Any = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    pid, command = record.get("pid"), record.get("command")
    if not isinstance(pid, int) or not isinstance(command, str) or not is_alive(pid):
        return None
    return LockHolder(pid=pid, command=command)
