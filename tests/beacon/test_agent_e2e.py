"""``beacon start`` as a real subprocess against the stand-in Pulse."""

import json
import signal
import socket
import time

import pytest

from beacon.echo import UDPEcho
from tests.beacon.agentproc import Agent, beacon, wait_for, write_config
from tests.beacon.fullqueue import FullQueue
from tests.beacon.standin import StandInPulse


@pytest.fixture
def targets():
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(64)
    echo = UDPEcho("127.0.0.1", 0).start()
    yield {"tcp": tcp.getsockname()[1], "udp": echo.port}
    echo.stop()
    tcp.close()


def probe(kind: str, port: int) -> dict:
    return {"type": kind, "target": "127.0.0.1", "port": port, "count": 2, "timeout_seconds": 1}


def results_by_probe(pulse: StandInPulse) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in pulse.results():
        out.setdefault(r["probe_id"], []).append(r)
    return out


def test_agent_reports_reloads_and_stops_gracefully(tmp_path, pulse, targets):
    cfg = write_config(tmp_path / "beacon.yaml", pulse, [probe("TCP", targets["tcp"])])
    agent = Agent(cfg)
    try:
        wait_for(lambda: pulse.heartbeats, 15, "first heartbeat")
        tcp_id = wait_for(lambda: next(iter(results_by_probe(pulse)), None), 20, "TCP result")
        (r,) = results_by_probe(pulse)[tcp_id][:1]
        assert r["sent"] == 2 and r["received"] == 2 and r["packet_loss_rate"] == 0
        assert pulse.heartbeats[-1]["config_version"] == pulse.config_version()
        # Hot reload: add a UDP probe without a restart.
        pid = agent.proc.pid
        write_config(cfg, pulse, [probe("TCP", targets["tcp"]), probe("udp_ping", targets["udp"])])
        wait_for(lambda: len(results_by_probe(pulse)) == 2, 20, "UDP result after reload")
        udp_id = next(p["id"] for p in pulse.probes.values() if p["type"] == "UDP")
        assert results_by_probe(pulse)[udp_id][0]["received"] == 2
        assert agent.proc.pid == pid and agent.proc.poll() is None
        # An invalid edit is refused; the agent keeps running with its config.
        # (write_text truncates, then writes: the agent may see the file in between)
        cfg.write_text(cfg.read_text().replace(f"port: {targets['udp']}", "port: 70000"))
        wait_for(lambda: "probes[1].port: must be 1-65535, got 70000" in agent.output(), 10,
                 "refused reload")
        assert "config reload refused, keeping the running config" in agent.output()
        assert agent.proc.poll() is None
        write_config(cfg, pulse, [probe("TCP", targets["tcp"]), probe("udp_ping", targets["udp"])])
        # status --json
        st = beacon("status", "-c", str(cfg), "--json")
        info = json.loads(st.stdout)
        assert st.returncode == 0 and info["running"] is True and info["pid"] == pid
        assert info["last_report_ok"] is True and info["spool"]["heartbeats"] == 0
        assert {p["probe"] for p in info["probes"]} == {
            f"TCP 127.0.0.1:{targets['tcp']}",
            f"UDP 127.0.0.1:{targets['udp']}",
        }
        # Graceful stop.
        started = time.monotonic()
        stopped = beacon("stop", "-c", str(cfg))
        assert stopped.returncode == 0, stopped.stderr
        assert agent.proc.wait(10) == 0 and time.monotonic() - started < 10
        out = agent.output()
        assert "Reporting to Pulse… ok" in out and "Beacon stopped" in out
        assert "Traceback" not in out
        st = beacon("status", "-c", str(cfg), "--json")
        assert st.returncode == 3 and json.loads(st.stdout)["running"] is False
    finally:
        agent.kill()


def test_pulse_down_spools_then_delivers_everything_once_in_order(tmp_path, pulse, targets):
    cfg = write_config(tmp_path / "beacon.yaml", pulse, [probe("TCP", targets["tcp"])])
    agent = Agent(cfg)
    try:
        wait_for(lambda: pulse.results(), 20, "first result")
        pulse.stop()
        state = tmp_path / "state" / "status.json"
        wait_for(
            lambda: state.exists() and json.loads(state.read_text())["spool"]["heartbeats"] >= 3,
            20,
            "heartbeats spooled",
        )
        assert "spooled" in agent.output()
        pulse.start()  # same port
        wait_for(
            lambda: (
                json.loads(state.read_text())["spool"]["heartbeats"] == 0
                and json.loads(state.read_text())["last_report_ok"]
            ),
            20,
            "spool drained",
        )
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(10) == 0
        stamps = [hb["timestamp"] for hb in pulse.heartbeats]
        assert stamps == sorted(stamps) and len(stamps) == len(set(stamps))  # once, in order
        reports = sum("Reporting to Pulse…" in line for line in agent.lines)
        assert len(stamps) >= reports - 1  # every report got there (the last may be in flight)
        assert any(r[1] == "/api/v1/beacon/heartbeats" for r in pulse.requests)
    finally:
        agent.kill()


def test_pulse_unreachable_at_start_runs_local_probes(tmp_path, targets):
    pulse = StandInPulse()
    # reserve a port, but start Pulse only later
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    pulse.port = s.getsockname()[1]
    s.close()
    cfg = write_config(tmp_path / "beacon.yaml", pulse, [probe("TCP", targets["tcp"])])
    agent = Agent(cfg)
    try:
        wait_for(
            lambda: "probe ids not known yet" in agent.output() or "spooled" in agent.output(),
            15,
            "spooling",
        )
        time.sleep(3)  # the local probe runs meanwhile
        pulse.start()
        wait_for(lambda: pulse.results(), 20, "results after Pulse came back")
        (pid,) = {r["probe_id"] for r in pulse.results()}
        assert pid == next(iter(pulse.probes.values()))["id"]
        first = pulse.results()[0]
        # measured while Pulse was down, delivered later
        assert first["timestamp"] < pulse.heartbeats[-1]["timestamp"]
    finally:
        agent.proc.send_signal(signal.SIGTERM)
        agent.proc.wait(10)
        agent.kill()
        pulse.stop()


def test_stop_while_a_probe_waits_on_a_slow_connect(tmp_path, pulse):
    """A 30 s connect to a full accept queue must not hold up ``beacon stop`` (≤ 10 s)."""
    fq = FullQueue()
    slow = {
        "type": "TCP",
        "target": "127.0.0.1",
        "port": fq.port,
        "count": 1,
        "timeout_seconds": 30,
    }
    cfg = write_config(tmp_path / "beacon.yaml", pulse, [slow])
    agent = Agent(cfg)
    try:
        wait_for(lambda: "Reporting to Pulse…" in agent.output(), 15, "first report")
        time.sleep(1.0)  # the probe's first run started at once and now waits on its SYN
        assert agent.proc.poll() is None
        started = time.monotonic()
        stopped = beacon("stop", "-c", str(cfg), timeout=30)
        took = time.monotonic() - started
        assert stopped.returncode == 0, stopped.stderr
        assert took < 10 and agent.proc.wait(5) == 0
        assert "Traceback" not in agent.output()
    finally:
        agent.kill()
        fq.close()


def test_sighup_reloads_and_a_second_start_is_refused(tmp_path, pulse, targets):
    cfg = write_config(tmp_path / "beacon.yaml", pulse, [probe("TCP", targets["tcp"])])
    agent = Agent(cfg)
    try:
        wait_for(lambda: "Reporting to Pulse…" in agent.output(), 15, "first report")
        second = beacon("start", "-c", str(cfg), timeout=20)
        assert second.returncode == 1 and "already running" in second.stderr
        assert "Traceback" not in second.stderr
        agent.proc.send_signal(signal.SIGHUP)  # file unchanged: reloaded all the same
        wait_for(lambda: "config reloaded" in agent.output(), 10, "reload on SIGHUP")
        assert agent.proc.poll() is None
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(10) == 0
    finally:
        agent.kill()
