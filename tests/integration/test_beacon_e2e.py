"""The real Beacon agent against the real Pulse app on embedded defaults (`make run` mode).

register → declare local probes → results for each probe reach the live cache → hot
reload adds a probe → Pulse stopped (gracefully: what it accepted is flushed) →
heartbeats spooled → Pulse back: all delivered, the runs before the stop still answered →
`beacon stop` is graceful.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml

from beacon.echo import UDPEcho
from tests.integration.conftest import ROOT, SECRET, wait_until
from tests.integration.test_processes import BIN, start, stop
from tests.support.servers import free_port, wait_for_port

pytestmark = pytest.mark.integration
REPORT_SECONDS = 1


class Pulse:
    """`flask --app wsgi serve` (what `make run` starts) on a SQLite file: start, stop
    (SIGTERM: graceful, flushes what it accepted), start again on the same port."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.port = tmp, free_port()
        self.env = {"DATABASE_URL": f"sqlite:///{tmp / 'pulse.db'}", "SECRET_KEY": SECRET,
                    "REDIS_URL": "", "CELERY_BROKER_URL": ""}
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.starts = 0

    def flask(self, *args: str, stdin: str | None = None) -> str:
        return subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT,
                              env={**os.environ, **self.env}, input=stdin, text=True,
                              check=True, capture_output=True).stdout

    def start(self) -> None:
        self.starts += 1
        self.proc = start([str(BIN / "flask"), "--app", "wsgi", "serve", "--port",
                           str(self.port)], self.env, self.tmp / f"pulse-{self.starts}.log")
        wait_for_port(self.port)

    def stop(self) -> None:
        stop(self.proc)


def beacon_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "beacon.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture
def pulse(tmp_path):
    server = Pulse(tmp_path)
    server.flask("db", "upgrade")
    server.flask("users", "create", "admin@e2e.test", "--role", "admin", "--password-stdin",
                 stdin="e2e-admin-password\n")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def targets():
    """A TCP listener and a UDP echo on loopback for the agent to probe."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    stop_event = threading.Event()

    def accept_loop():
        listener.settimeout(0.2)
        while not stop_event.is_set():
            try:
                conn, _ = listener.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    echo = UDPEcho("127.0.0.1", 0)
    echo.start()
    yield {"tcp": listener.getsockname()[1], "udp": echo.port}
    stop_event.set()
    thread.join(2)
    listener.close()
    echo.stop()


def api(pulse: Pulse) -> dict:
    token = requests.post(f"{pulse.base}/api/v1/auth/login", json={
        "email": "admin@e2e.test", "password": "e2e-admin-password"}, timeout=10).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def status(config: Path) -> dict:
    result = beacon_cli("status", "-c", str(config), "--json")
    return json.loads(result.stdout)


def live_points(pulse: Pulse, auth: dict, node_id: str) -> dict:
    return requests.get(f"{pulse.base}/api/v1/nodes/{node_id}/live", headers=auth,
                        timeout=10).json()


def test_agent_end_to_end(pulse, targets, tmp_path):
    auth = api(pulse)
    enroll = requests.post(f"{pulse.base}/api/v1/enrollment-tokens",
                           json={"expires_in_seconds": 600, "uses": 1}, headers=auth,
                           timeout=10).json()
    config = tmp_path / "beacon.yaml"
    registered = beacon_cli("register", "-c", str(config), "--server", pulse.base,
                            "--enroll-token", enroll["token"], "--name", "e2e-beacon")
    assert registered.returncode == 0, registered.stderr
    doc = yaml.safe_load(config.read_text())
    node_id = doc["node_id"]
    doc.update(report_interval_seconds=REPORT_SECONDS, state_dir=str(tmp_path / "state"),
               probes=[{"type": "TCP", "target": "127.0.0.1", "port": targets["tcp"],
                        "count": 3, "timeout_seconds": 1, "interval_seconds": 60},
                       {"type": "udp_ping", "target": "127.0.0.1", "port": targets["udp"],
                        "count": 3, "timeout_seconds": 1, "interval_seconds": 60}])
    config.write_text(yaml.safe_dump(doc))

    agent = start([sys.executable, "-m", "beacon.cli", "start", "-c", str(config)], {},
                  tmp_path / "agent.log")
    try:
        # results of each probe reach the live cache
        def probes_with_points(expected: int):
            live = live_points(pulse, auth, node_id)
            with_points = [p for p in live["probes"] if p["points"]]
            return len(with_points) >= expected and live

        live = wait_until(lambda: probes_with_points(2), 40, interval=1,
                          message="both probes' results in the live cache")
        assert {p["packet_loss_rate"] for q in live["probes"] for p in q["points"]} == {0.0}
        # the heartbeats sent before the first runs ended are liveness only: no false
        # 100 % loss in the node's series (SPEC §7)
        assert live["summary"] and {p["packet_loss_rate"] for p in live["summary"]} == {0.0}
        declared = requests.get(f"{pulse.base}/api/v1/probes?node_id={node_id}", headers=auth,
                                timeout=10).json()["data"]
        assert {p["source"] for p in declared} == {"beacon"} and len(declared) == 2

        # hot reload: a third probe, without a restart
        doc["probes"].append({"type": "TCP", "target": "127.0.0.1", "port": targets["tcp"],
                              "count": 2, "timeout_seconds": 1, "interval_seconds": 61})
        doc["probes"][2]["port"] = targets["udp"]  # a closed TCP port: refused, 100 % loss
        config.write_text(yaml.safe_dump(doc))
        live = wait_until(lambda: probes_with_points(3), 40, interval=1,
                          message="the hot-reloaded probe reporting")
        assert agent.poll() is None, "no restart"
        refused = [p for p in live["probes"] if p["points"] and
                   p["points"][-1]["packet_loss_rate"] == 100.0]
        assert len(refused) == 1
        assert refused[0]["points"][-1]["latency_ms"] is None  # a dead path is not 0 ms
        assert refused[0]["points"][-1]["error"] == "ERR_CONNECTION_REFUSED"
        # one dead target of three: the summary says so (SPEC §7), it does not hide it
        live = wait_until(lambda: (lambda lv: lv["summary"] and abs(
            lv["summary"][-1]["packet_loss_rate"] - 33.33) < 0.01 and lv)(
            live_points(pulse, auth, node_id)), 20, interval=1,
            message="a summary counting the dead target")

        # Pulse stopped: heartbeats go to the spool
        stopped_at = datetime.now(UTC)
        pulse.stop()
        wait_until(lambda: status(config)["spool"]["heartbeats"] >= 4, 30, interval=0.5,
                   message="heartbeats spooled while Pulse is down")
        spooled = status(config)["spool"]["heartbeats"]
        restarted_at = datetime.now(UTC)
        pulse.start()
        wait_until(lambda: status(config)["spool"]["heartbeats"] == 0, 40, interval=0.5,
                   message="spool delivered")
        state = status(config)
        assert state["spool"]["dropped"] == 0 and state["last_report_ok"] is True
        # the restarted embedded Pulse has a fresh live cache; every spooled heartbeat was
        # delivered to it (most carry no run: liveness only, SPEC §7) and counted once
        auth = api(pulse)
        metrics = requests.get(f"{pulse.base}/metrics", timeout=10).text
        [accepted] = [float(line.split()[-1]) for line in metrics.splitlines()
                      if line.startswith('pulse_heartbeats_total{outcome="accepted"}')]
        assert accepted >= spooled
        node = requests.get(f"{pulse.base}/api/v1/nodes/{node_id}", headers=auth,
                            timeout=10).json()
        assert node["status"] == "online"
        assert datetime.fromisoformat(node["last_seen_at"]) >= restarted_at
        live = live_points(pulse, auth, node_id)
        stamps = [p["timestamp"] for p in live["summary"]]
        assert stamps == sorted(stamps) and len(stamps) == len(set(stamps))
        # what the first Pulse accepted was flushed when it stopped (SIGTERM), and the live
        # hour's answer merges the database: the runs before the stop are still there
        for probe in live["probes"]:
            before = [p for p in probe["points"]
                      if datetime.fromisoformat(p["timestamp"]) < stopped_at]
            assert before, f"{probe['label']}: runs before the restart are missing"
    finally:
        stopped = beacon_cli("stop", "-c", str(config))
        try:
            agent.wait(15)
        finally:
            stop(agent)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert agent.returncode == 0
    assert "Reporting to Pulse" in (tmp_path / "agent.log").read_text()
    assert status(config)["running"] is False
