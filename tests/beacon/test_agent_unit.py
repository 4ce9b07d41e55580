"""In-process Agent without its loop: reporting failures, hot reload, probe ids."""

import os
import socket
import threading
import time

import pytest
import yaml

from beacon.agent import Agent
from beacon.config import load
from beacon.probes import ProbeSpec, RunResult
from tests.beacon.standin import StandInPulse


@pytest.fixture
def port():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield srv.getsockname()[1]
    srv.close()


class Harness:
    def __init__(self, tmp_path, pulse: StandInPulse, port: int) -> None:
        self.path = tmp_path / "beacon.yaml"
        self.pulse = pulse
        self.port = port
        self.mtime = time.time() - 1000
        self.doc = {
            "pulse_server": pulse.url,
            "node_id": pulse.node_id,
            "token": pulse.token,
            "report_interval_seconds": 1,
            "state_dir": str(tmp_path / "state"),
            "probes": [{"type": "TCP", "target": "127.0.0.1", "port": port, "count": 1}],
        }
        self.write()
        self.lines: list[str] = []
        self.stop = threading.Event()
        self.agent = Agent(load(self.path), self.stop, out=self.lines.append)

    def write(self, **changes) -> None:
        self.doc.update(changes)
        self.path.write_text(yaml.safe_dump(self.doc))
        self.mtime += 10  # a distinct mtime each edit, whatever the fs timestamp grain
        os.utime(self.path, (self.mtime, self.mtime))

    def close(self) -> None:
        self.stop.set()
        self.agent.transport.close()


@pytest.fixture
def harness(tmp_path, pulse, port):
    h = Harness(tmp_path, pulse, port)
    yield h
    h.close()


def run_of(spec: ProbeSpec, rtt: float) -> RunResult:
    return RunResult(spec=spec, started_at=time.time(), samples=[rtt])


def local_spec(agent: Agent) -> ProbeSpec:
    (spec,) = [s for s in agent.effective_probes() if s.target == "127.0.0.1"]
    assert spec.id
    return spec


def test_unexpected_report_error_keeps_the_runs(harness, pulse):
    agent = harness.agent
    assert agent.sync()
    agent.scheduler.requeue([run_of(local_spec(agent), 1.5)])
    real = agent.reporter.report

    def boom(hb):
        raise RuntimeError("boom")

    agent.reporter.report = boom
    assert agent.report_once() is None  # logged, not raised
    assert "internal error" in harness.lines[-1] and agent.last["ok"] is False
    agent.reporter.report = real
    out = agent.report_once()
    assert out is not None and out.ok
    assert [r["latency_ms"] for r in pulse.results()] == [1.5]  # requeued, then delivered


def test_error_after_delivery_does_not_resend(harness, pulse):
    agent = harness.agent
    assert agent.sync()
    agent.scheduler.requeue([run_of(local_spec(agent), 2.5)])

    def boom(*args):
        raise RuntimeError("after delivery")

    agent._describe = boom
    assert agent.report_once() is None
    del agent._describe
    assert agent.report_once().ok
    assert [r["latency_ms"] for r in pulse.results()] == [2.5]  # once, not twice


def test_agent_loop_survives_a_failing_reload(harness, pulse):
    agent = harness.agent
    agent.reload_poll_seconds = 0.05
    calls = []

    def boom(force=False):
        calls.append(force)
        raise RuntimeError("reload bug")

    agent.check_reload = boom
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(pulse.heartbeats) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(calls) >= 2 and thread.is_alive() and len(pulse.heartbeats) >= 2
    finally:
        harness.stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_a_file_changing_while_it_is_read_is_read_again_not_refused(harness, monkeypatch):
    """An editor that truncates, then writes: the agent may read the file half written. It
    neither refuses nor applies that read; the next turn reads the finished file."""
    agent = harness.agent
    half = harness.path.with_name("half.yaml")
    half.write_text("pulse_server: http://127.0.0.1:1\ntoken: [")
    reads = []

    def load_while_saving(path):
        reads.append(path)
        if len(reads) == 1:  # what the first read saw; meanwhile the save finishes
            harness.write(report_interval_seconds=7)
            return load(half)
        return load(path)

    monkeypatch.setattr("beacon.config.load", load_while_saving)
    harness.mtime += 10  # the save begins: the file changed
    os.utime(harness.path, (harness.mtime, harness.mtime))
    assert not agent.check_reload()
    assert not [line for line in harness.lines if "refused" in line]
    assert agent.check_reload() and agent.report_interval == 7
    assert len(reads) == 2


def test_token_edits_apply_each_time_a_b_a(harness, pulse):
    agent = harness.agent
    assert agent.report_once().ok
    for token in ("token-B", pulse.token, "token-B", "node-token"):
        pulse.token = token
        harness.write(token=token)
        assert agent.check_reload()
        out = agent.report_once()
        assert out.ok, (token, out.error)
        assert agent.cfg.token == token
    assert [r[2] for r in pulse.requests if r[1] == "/api/v1/beacon/heartbeat"] == [200] * 5


def test_pulse_server_edit_applies_without_restart(harness, pulse):
    agent = harness.agent
    assert agent.report_once().ok
    other = StandInPulse(token=pulse.token, node_id=pulse.node_id).start()
    try:
        harness.write(pulse_server=other.url)
        assert agent.check_reload()
        assert agent.report_once().ok
        assert other.heartbeats and len(pulse.heartbeats) == 1
        assert agent.cfg.pulse_server == other.url
        assert any(r[1] == "/api/v1/beacon/probes" for r in other.requests)  # declared there
    finally:
        other.stop()


def test_report_interval_edit_compared_with_running_config(harness):
    agent = harness.agent
    for interval in (5, 1, 7):
        harness.write(report_interval_seconds=interval)
        assert agent.check_reload() and agent.report_interval == interval
    harness.write(state_dir="/elsewhere")  # needs a restart: kept
    assert agent.check_reload() and str(agent.cfg.state_dir) != "/elsewhere"


def test_probe_deleted_in_pulse_does_not_sink_the_heartbeat(harness, pulse, port):
    agent = harness.agent
    api = pulse.add_api_probe(type="TCP", target="localhost", port=port, count=1)
    assert agent.sync()
    local = local_spec(agent)
    (api_spec,) = [s for s in agent.effective_probes() if s.id == api["id"]]
    # An operator deletes the Beacon's probe in Pulse; the config answer no longer has it.
    with pulse.lock:
        del pulse.probes[("TCP", "127.0.0.1", port)]
    assert agent.sync(force_config=True)
    assert local.id not in agent.ids.valid and local.key not in agent.ids.by_key
    assert api["id"] in agent.ids.valid
    agent.scheduler.requeue([run_of(local, 3.0), run_of(api_spec, 4.0)])
    out = agent.report_once()
    assert out.ok, out.error
    assert [(r["probe_id"], r["latency_ms"]) for r in pulse.results()] == [(api["id"], 4.0)]


def test_every_probe_deleted_in_pulse_sends_no_stale_result(harness, pulse, port):
    agent = harness.agent
    assert agent.sync()
    local = local_spec(agent)
    with pulse.lock:
        pulse.probes.clear()
    assert agent.sync(force_config=True)
    assert agent.ids.valid == set() and agent.ids.by_key == {}
    agent.scheduler.requeue([run_of(local, 3.0)])
    out = agent.report_once()
    assert out.ok and pulse.heartbeats[-1]["results"] == []
