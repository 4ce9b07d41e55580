"""In-process Agent: Pulse's config list, drift refetch, ETag."""

import socket
import threading
import time

import yaml

from beacon.agent import Agent
from beacon.config import load


def wait_for(pred, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_runs_pulse_list_and_refetches_on_drift(tmp_path, pulse):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    port = srv.getsockname()[1]
    cfg_path = tmp_path / "beacon.yaml"
    cfg_path.write_text(
        yaml.safe_dump(
            {
                "pulse_server": pulse.url,
                "node_id": pulse.node_id,
                "token": pulse.token,
                "report_interval_seconds": 1,
                "state_dir": str(tmp_path / "st"),
                "probes": [{"type": "TCP", "target": "127.0.0.1", "port": port, "count": 1}],
            }
        )
    )
    stop = threading.Event()
    lines: list[str] = []
    agent = Agent(load(cfg_path), stop, out=lines.append)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: all(s.id for s in agent.scheduler.specs))
        assert {s.key for s in agent.scheduler.specs} == {("TCP", "127.0.0.1", port)}
        assert agent.config_version == pulse.config_version()
        # An operator adds a probe through the API: the next heartbeat answer reports
        # drift, the agent refetches the config and runs the new probe too.
        api = pulse.add_api_probe(type="TCP", target="localhost", port=port, count=1)
        wait_for(lambda: any(s.id == api["id"] for s in agent.scheduler.specs))
        wait_for(lambda: any(r["probe_id"] == api["id"] for r in pulse.results()))
        assert agent.config_version == pulse.config_version()
        config_gets = [r for r in pulse.requests if r[1] == "/api/v1/beacon/config"]
        assert len(config_gets) >= 2
        # Disabled in Pulse: the agent stops running it.
        api["enabled"] = False
        wait_for(lambda: all(s.id != api["id"] for s in agent.scheduler.specs))
    finally:
        stop.set()
        thread.join(10)
        srv.close()
    assert any("Reporting to Pulse… ok" in line for line in lines)
