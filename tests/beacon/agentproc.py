"""``beacon`` as a real subprocess: run a command, or keep an agent and read its output."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from tests.beacon.standin import StandInPulse

ROOT = Path(__file__).resolve().parents[2]


def beacon(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "beacon.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


class Agent:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "beacon.cli", "start", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def wait_for(pred, timeout: float, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")



def write_config(path: Path, pulse: StandInPulse, probes: list[dict], **extra) -> Path:
    doc = {
        "pulse_server": pulse.url,
        "node_id": pulse.node_id,
        "node_name": "test",
        "token": pulse.token,
        "report_interval_seconds": 1,
        "state_dir": str(path.parent / "state"),
        "probes": probes,
        **extra,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc))
    os.replace(tmp, path)  # atomic, as an editor's save would be
    return path
