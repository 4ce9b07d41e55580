"""The agent's state directory: PID file and status file, written atomically."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

PID_FILE = "beacon.pid"
STATUS_FILE = "status.json"
SPOOL_DIR = "spool"
LOG_FILE = "beacon.log"
LOCK_FILE = "beacon.lock"


class AlreadyRunning(Exception):
    """Another agent holds this state dir; ``pid`` is its PID when the PID file says."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        super().__init__(f"beacon is already running (pid {pid or '?'})")


def ensure_dir(state_dir: Path) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return state_dir


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped by its parent) is dead."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def read_pid(state_dir: Path) -> int | None:
    """The PID in the PID file when that process is alive, else None."""
    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and pid_alive(pid) else None


def write_pid(state_dir: Path, pid: int | None = None) -> None:
    atomic_write(state_dir / PID_FILE, f"{pid or os.getpid()}\n")


def acquire_pid_file(state_dir: Path) -> int:
    """Become the one agent of ``state_dir``; returns the lock fd to keep open until exit.

    Two checks, so two ``beacon start`` racing each other cannot both run: an exclusive
    ``flock`` on ``beacon.lock`` (held for the life of the process, released by the
    kernel even on a crash), then the PID file created with ``O_EXCL``. A PID file left
    by a crashed agent is stale once we hold the lock, so it is replaced.
    Raises ``AlreadyRunning``.
    """
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise AlreadyRunning(read_pid(state_dir)) from None
    path = state_dir / PID_FILE
    try:
        try:
            pid_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            path.unlink(missing_ok=True)  # stale: its agent no longer holds the lock
            pid_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(pid_fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
    except FileExistsError:
        os.close(fd)
        raise AlreadyRunning(read_pid(state_dir)) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def release_pid_file(state_dir: Path, lock_fd: int) -> None:
    """Remove our PID file, then drop the lock (the lock file itself stays)."""
    remove_pid(state_dir)
    with contextlib.suppress(OSError):
        os.close(lock_fd)


def remove_pid(state_dir: Path) -> None:
    path = state_dir / PID_FILE
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def atomic_write(path: Path, text: str, mode: int | None = None, durable: bool = False) -> None:
    """Replace ``path`` with ``text`` in one step: readers see the old or the new file.

    ``mode`` sets the permissions of the new file from its creation (mkstemp makes it
    0600), so a secret is never readable by others, not even for a moment.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_status(state_dir: Path, status: dict[str, Any]) -> None:
    atomic_write(state_dir / STATUS_FILE, json.dumps(status, indent=2, sort_keys=True), mode=0o644)


def read_status(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
