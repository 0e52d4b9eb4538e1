"""Starting and stopping node processes of a cluster directory by their pid files."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from cli.layout import ClusterDir, LayoutError, pid_file_of


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead; reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return _state(pid) not in {"Z", "X"}


def _state(pid: int) -> str:
    fields = _stat_fields(pid)
    return "?" if fields is None else fields[0]


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user and system) process `pid` used so far, from /proc (None elsewhere, or
    once it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (the state first), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def node_pid(layout: ClusterDir, name: str) -> int | None:
    """The pid of the running node, or None. A stale pid file is removed: its process is gone,
    or the pid now belongs to a process that is not this node (pids are reused)."""
    path = layout.pid_file(name)
    pid = read_pid(path)
    if pid is None:
        return None
    if not is_alive(pid) or not runs_config(pid, layout.config_file(name)):
        path.unlink(missing_ok=True)
        return None
    return pid


# How long a process may show no command line: a process that has just been started shows
# none until the kernel has set up its new image's arguments (its parent may already be past
# `Popen`, which returns once the exec began).
CMDLINE_WAIT_S = 1.0


def runs_config(pid: int, config_file: Path) -> bool:
    """Whether process `pid` was started with `--config` naming `config_file` (as start_node
    starts a node); False when /proc cannot tell (another user's process, say)."""
    deadline = time.monotonic() + CMDLINE_WAIT_S
    try:
        while not (cmdline := Path(f"/proc/{pid}/cmdline").read_bytes()):
            if time.monotonic() > deadline:
                return False  # a kernel thread, say: none of ours
            time.sleep(0.005)
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    args = cmdline.split(b"\0")
    for index, arg in enumerate(args):
        # click takes `--config PATH` and `--config=PATH` alike.
        if arg == b"--config" and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(b"--config="):
            value = arg.removeprefix(b"--config=")
        else:
            continue
        named = os.path.join(cwd, os.fsdecode(value))
        return os.path.realpath(named) == os.path.realpath(config_file)
    return False


def running_node_pids(layout: ClusterDir) -> dict[str, int]:
    """Every node's pid; raises LayoutError naming the first node that is not running."""
    pids: dict[str, int] = {}
    for name in layout.node_names():
        pid = node_pid(layout, name)
        if pid is None:
            raise LayoutError(f"{name} has no running process (pid file {layout.pid_file(name)})")
        pids[name] = pid
    return pids


# Per node: its process id and the CPU seconds that process used so far.
NodeCpu = dict[str, tuple[int, float]]


def node_cpu_seconds(layout: ClusterDir) -> NodeCpu | str:
    """Each node process's id and CPU seconds so far (from /proc), or why they cannot be
    read."""
    try:
        pids = running_node_pids(layout)
    except LayoutError as exc:
        return str(exc)
    seconds: NodeCpu = {}
    for name, pid in pids.items():
        spent = cpu_seconds(pid)
        if spent is None:
            return f"{name} (pid {pid}) is gone, or /proc cannot tell its CPU time"
        seconds[name] = (pid, spent)
    return seconds


def cpu_spent(first: NodeCpu | str, last: NodeCpu | str) -> dict[str, float] | str:
    """Each node's CPU seconds between two readings, or why there is no such figure (one
    could not be read, or a node's process changed in between: it was restarted)."""
    if isinstance(first, str):
        return first
    if isinstance(last, str):
        return last
    for name, (pid, _) in first.items():
        if last.get(name, (None, 0.0))[0] != pid:
            return f"{name} was restarted during the run (pid {pid} at its start)"
    return {name: last[name][1] - spent for name, (_, spent) in first.items()}


@contextlib.contextmanager
def terminated_as_exit() -> Iterator[None]:
    """Within: SIGTERM raises SystemExit (status 143) in the main thread, as Ctrl-C raises
    KeyboardInterrupt, so the `finally` that stops a command's nodes runs. Nodes run in their
    own sessions; by default SIGTERM ends the command at once and leaves them running."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can take signals
        return

    def exit_on(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_on)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def holding_pid_file(config_file: Path, name: str) -> Iterator[Path]:
    """Within: this process's id in the pid file of the node that runs `config_file`, so that
    `cluster down`, `kill`, `restart` and `status` find a node run in the foreground as they
    find one `cluster up` started (which runs through here too). LayoutError, and the file
    untouched, while another live process runs that node. On the way out the file is removed
    if it still names this process.

    The open file stays locked (flock) while this process lives, so that of two nodes started
    at once on one config only one takes it; a holder that started before nodes locked it is
    recognised by its pid and command line."""
    path = pid_file_of(config_file)
    me = os.getpid()
    descriptor = _lock(path, name)
    try:
        holder = read_pid(path)
        if (
            holder is not None
            and holder != me
            and is_alive(holder)
            and runs_config(holder, config_file)
        ):
            raise LayoutError(_already_running(name, holder, path))
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{me}\n".encode(), 0)
        yield path
    finally:
        if read_pid(path) == me:
            path.unlink(missing_ok=True)
        os.close(descriptor)


def _lock(path: Path, name: str) -> int:
    """An open descriptor of `path` holding its exclusive lock (LayoutError if another process
    holds it). Tried again when the file was removed or replaced between opening and locking
    (by a node that held it, on its way out): a lock on that file would guard nothing."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise LayoutError(_already_running(name, read_pid(path), path)) from None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(descriptor).st_ino:
            return descriptor
        os.close(descriptor)


def _already_running(name: str, pid: int | None, path: Path) -> str:
    holder = "another process" if pid is None else f"pid {pid}"
    return (
        f"{name} is already running ({holder}, pid file {path}); stop it first "
        "(`millchain cluster down` or `cluster kill`, or Ctrl-C where it runs in the foreground)"
    )


def start_node(
    layout: ClusterDir,
    name: str,
    *,
    extra_args: tuple[str, ...] = (),
    prefix: tuple[str, ...] = (),
) -> int:
    """Start a node in the background (its own session, so signals to the CLI spare it).
    `prefix` runs it under another command that execs it (e.g. `ip netns exec NS`), so the
    recorded pid is the node's."""
    layout.config(name)  # raises LayoutError for an unknown node
    running = node_pid(layout, name)
    if running is not None:
        raise LayoutError(f"{name} is already running (pid {running})")
    node_dir = layout.node_dir(name)
    with open(node_dir / "stdout.log", "ab") as output:
        process = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "cli",
                "node",
                "run",
                "--config",
                str(layout.config_file(name)),
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=node_dir,
        )
    layout.pid_file(name).write_text(f"{process.pid}\n", encoding="utf-8")
    return process.pid


def signal_node(layout: ClusterDir, name: str, signum: signal.Signals) -> int | None:
    pid = node_pid(layout, name)
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
    return pid


def stop_node(layout: ClusterDir, name: str, *, timeout_s: float = 10.0) -> bool:
    """SIGTERM, wait for a graceful exit, SIGKILL past the deadline. True if it was running."""
    return bool(stop_nodes(layout, [name], timeout_s=timeout_s))


def stop_nodes(layout: ClusterDir, names: Sequence[str], *, timeout_s: float = 10.0) -> list[str]:
    """Stop the named nodes together: SIGTERM to each running one at once, one deadline of
    `timeout_s` for all of them to exit, SIGKILL to those still running past it and as long
    again for those. Stopping n nodes takes as long as the slowest one, not the sum of them.
    The names of the nodes that were running; LayoutError naming any that outlived SIGKILL
    (a process stuck in the kernel), whose pid files are kept."""
    signalled = {name: signal_node(layout, name, signal.SIGTERM) for name in names}
    running = {name: pid for name, pid in signalled.items() if pid is not None}
    left = _wait_exited(running, timeout_s)
    for pid in left.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    stuck = _wait_exited(left, timeout_s)
    for name in running:
        if name not in stuck:
            layout.pid_file(name).unlink(missing_ok=True)
    if stuck:
        raise LayoutError(
            "still running after SIGKILL: "
            + ", ".join(f"{name} (pid {pid})" for name, pid in stuck.items())
        )
    return list(running)


def _wait_exited(pids: dict[str, int], timeout_s: float) -> dict[str, int]:
    """Until every process in `pids` has exited or `timeout_s` passed; those still running."""
    deadline = time.monotonic() + timeout_s
    left = dict(pids)
    while True:
        left = {name: pid for name, pid in left.items() if is_alive(pid)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def kill_node(layout: ClusterDir, name: str, *, timeout_s: float = 10.0) -> bool:
    """SIGKILL a node at once (a crash), and wait until it is gone."""
    pid = signal_node(layout, name, signal.SIGKILL)
    if pid is None:
        return False
    deadline = time.monotonic() + timeout_s
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    layout.pid_file(name).unlink(missing_ok=True)
    return True
