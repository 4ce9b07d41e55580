"""Drive an installed ``beacon`` (a venv's console script or a pyz) as a user would.

Every step runs in a subprocess with a time bound, against loopback only: ``--version``,
an ad-hoc ``probe`` of a listener opened here, and a ``start`` that reports to the
stand-in Pulse until the probe's results arrive, then a SIGTERM and a graceful exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from beacon import __version__
from tests.beacon.standin import StandInPulse

SERVER_MODULES = ("flask", "sqlalchemy", "celery", "redis", "psycopg2")
STEP_TIMEOUT_SECONDS = 60


@contextlib.contextmanager
def tcp_listener() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT_SECONDS
    )


def check_version(cmd: list[str], env: dict[str, str], cwd: Path) -> None:
    done = run([*cmd, "--version"], env, cwd)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"beacon, version {__version__}"


def check_probe(cmd: list[str], env: dict[str, str], cwd: Path) -> None:
    with tcp_listener() as port:
        args = ["probe", "tcp", "127.0.0.1", str(port), "-c", "3", "-t", "2", "-i", "0"]
        human = run([*cmd, *args], env, cwd)
        as_json = run([*cmd, *args, "--json"], env, cwd)
    assert human.returncode == 0, human.stdout + human.stderr
    # one line per sample, as it comes, then the summary table
    assert sum(1 for line in human.stdout.splitlines() if "seq=" in line) == 3, human.stdout
    assert "3 sent, 3 received, 0% loss" in human.stdout, human.stdout
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert (data["type"], data["port"], data["sent"], data["received"]) == ("TCP", port, 3, 3)


def check_start(cmd: list[str], env: dict[str, str], cwd: Path) -> None:
    """``beacon start`` reports a probe's run to the stand-in, then stops on SIGTERM."""
    pulse = StandInPulse().start()
    try:
        with tcp_listener() as port:
            config = cwd / "beacon.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "pulse_server": pulse.url,
                        "node_id": pulse.node_id,
                        "token": pulse.token,
                        "state_dir": str(cwd / "state"),
                        "report_interval_seconds": 1,
                        "probes": [
                            {"type": "TCP", "target": "127.0.0.1", "port": port, "count": 2}
                        ],
                    }
                )
            )
            out_path, err_path = cwd / "start.out", cwd / "start.err"
            with out_path.open("w") as out, err_path.open("w") as err:
                proc = subprocess.Popen(
                    [*cmd, "start", "-c", str(config)], env=env, cwd=cwd, stdout=out, stderr=err
                )
                try:
                    received = _wait_for_results(pulse, proc)
                finally:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                    rc = proc.wait(timeout=15)
        stdout, stderr = out_path.read_text(), err_path.read_text()
        assert received == 2, stdout + stderr
        assert rc == 0, stdout + stderr
        assert "Reporting to Pulse… ok" in stdout, stdout + stderr
        assert "Beacon stopped" in stdout, stdout + stderr
    finally:
        pulse.stop()


def _wait_for_results(pulse: StandInPulse, proc: subprocess.Popen[bytes]) -> int | None:
    deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        results = pulse.results()
        if results:
            return results[0]["received"]
        time.sleep(0.1)
    return None


def installed_server_modules(python: str, env: dict[str, str], cwd: Path) -> list[str]:
    """The SERVER_MODULES that ``python`` can import (it must import beacon fully)."""
    code = (
        "import importlib.util, json, beacon.agent, beacon.cli, beacon.sdk; "
        f"print(json.dumps([m for m in {SERVER_MODULES!r} if importlib.util.find_spec(m)]))"
    )
    done = run([python, "-c", code], env, cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def clean_env(tmp: Path) -> dict[str, str]:
    """The environment for the installed agent: no PYTHONPATH, HOME in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["HOME"] = str(tmp / "home")
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix)
    )
    return env
