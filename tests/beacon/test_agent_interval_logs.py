"""A lowered report interval applies at once (file edit or SIGHUP); the agent's output is
one log format, and a failed report is one short line."""

import os
import re
import signal
import socket
import threading
import time

import pytest
import yaml

from beacon.agent import Agent
from beacon.config import load
from tests.beacon.agentproc import Agent as AgentProcess
from tests.beacon.agentproc import wait_for, write_config

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) beacon[.\w]*: ")


class Running:
    """An in-process agent loop on a thread, its file editable with distinct mtimes."""

    def __init__(self, tmp_path, pulse, reload_poll: float) -> None:
        self.path = tmp_path / "beacon.yaml"
        self.doc = {
            "pulse_server": pulse.url,
            "node_id": pulse.node_id,
            "token": pulse.token,
            "report_interval_seconds": 3600,
            "state_dir": str(tmp_path / "state"),
            "probes": [],
        }
        self.mtime = time.time() - 1000
        self.write()
        self.stop = threading.Event()
        self.lines: list[str] = []
        self.agent = Agent(
            load(self.path), self.stop, out=self.lines.append, reload_poll_seconds=reload_poll
        )
        self.thread = threading.Thread(target=self.agent.run, daemon=True)
        self.thread.start()

    def write(self, **changes) -> None:
        self.doc.update(changes)
        self.path.write_text(yaml.safe_dump(self.doc))
        self.mtime += 10
        os.utime(self.path, (self.mtime, self.mtime))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.mark.parametrize("how", ["file edit", "SIGHUP"])
def test_lowered_report_interval_applies_at_once(tmp_path, pulse, how):
    # SIGHUP case: the file poll is an hour away, so only the request can apply it.
    running = Running(tmp_path, pulse, reload_poll=0.2 if how == "file edit" else 3600)
    try:
        wait_for(lambda: len(pulse.heartbeats) == 1, 15, "first heartbeat")
        time.sleep(0.5)
        assert len(pulse.heartbeats) == 1  # the next one is an hour away
        running.write(report_interval_seconds=1)
        if how == "SIGHUP":
            running.agent.request_reload()  # what the CLI's SIGHUP handler does
        changed = time.monotonic()
        wait_for(lambda: len(pulse.heartbeats) >= 3, 10, "reports every second")
        assert time.monotonic() - changed < 5
        assert any("reporting every 1 s" in line for line in running.lines)
    finally:
        running.close()


def test_output_is_one_log_format_and_a_failed_report_one_short_line(tmp_path, pulse):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there: connection refused
    cfg = write_config(tmp_path / "beacon.yaml", pulse, [], pulse_server=f"http://127.0.0.1:{port}")
    agent = AgentProcess(cfg)
    try:
        wait_for(
            lambda: sum("Reporting to Pulse… failed" in line for line in agent.lines) >= 2,
            30,
            "two failed reports",
        )
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(10) == 0
    finally:
        agent.kill()
    lines = [line for line in agent.lines if line]
    assert lines and all(LOG_LINE.match(line) for line in lines), lines
    failed = [line for line in lines if "Reporting to Pulse… failed" in line]
    assert all(len(line) < 200 for line in failed), failed
    assert f"connection refused to http://127.0.0.1:{port}" in failed[0]
    assert " WARNING beacon.agent: " in failed[0]
    text = "\n".join(lines)
    for noise in ("HTTPConnectionPool", "Max retries", "NewConnectionError", "retrying in"):
        assert noise not in text
    assert sum("Pulse sync failed" in line for line in lines) == 1  # said once, not per report
    assert lines[-1].endswith("INFO beacon.agent: Beacon stopped")
