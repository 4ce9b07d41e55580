"""The agent's state directory: PID file and status file, written atomically."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

PID_FILE = "beacon.pid"
STATUS_FILE = "status.json"
SPOOL_DIR = "spool"
LOG_FILE = "beacon.log"


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


def remove_pid(state_dir: Path) -> None:
    path = state_dir / PID_FILE
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_status(state_dir: Path, status: dict[str, Any]) -> None:
    atomic_write(state_dir / STATUS_FILE, json.dumps(status, indent=2, sort_keys=True))


def read_status(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
