"""``beacon`` commands in-process (CliRunner): probe, status, stop, register, PID lock."""

import json
import os
import signal
import socket
import stat

import pytest
import yaml
from click.testing import CliRunner

from beacon import state
from beacon.cli import cli
from beacon.spool import Spool

RESULT_KEYS = {
    "type",
    "target",
    "port",
    "error",
    "timestamp",
    "latency_ms",
    "packet_loss_rate",
    "jitter_ms",
    "latency_median_ms",
    "latency_min_ms",
    "latency_max_ms",
    "latency_p95_ms",
    "latency_variance",
    "sent",
    "received",
}


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield srv.getsockname()[1]
    srv.close()


def test_probe_tcp_json_open_port(listener):
    args = ["probe", "tcp", "127.0.0.1", str(listener), "-c", "3", "-t", "1", "-i", "0", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == RESULT_KEYS
    assert (data["type"], data["target"], data["port"]) == ("TCP", "127.0.0.1", listener)
    assert (data["sent"], data["received"], data["packet_loss_rate"]) == (3, 3, 0.0)
    assert data["error"] is None and data["latency_ms"] > 0


def test_probe_tcp_json_refused_exits_1():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    args = ["probe", "tcp", "127.0.0.1", str(port), "-c", "2", "-t", "1", "-i", "0", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert set(data) == RESULT_KEYS
    assert data["error"] == "ERR_CONNECTION_REFUSED" and data["packet_loss_rate"] == 100.0
    assert (data["sent"], data["received"]) == (2, 0)


def _config(tmp_path, **extra):
    path = tmp_path / "beacon.yaml"
    doc = {
        "pulse_server": "http://127.0.0.1:9",
        "node_id": "n",
        "token": "t",
        "state_dir": str(tmp_path / "state"),
        **extra,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_status_does_not_touch_the_spool(tmp_path):
    cfg = _config(tmp_path)
    spool_dir = tmp_path / "state" / "spool"
    spool = Spool(spool_dir)
    spool.append({"n": 1})
    spool.append({"n": 2})
    seg = next(spool_dir.glob("seg-*.jsonl"))
    with open(seg, "ab") as fh:
        fh.write(b'{"t": 1, "hb": {"n"')  # an agent mid-append
    before = _snapshot(spool_dir)
    result = CliRunner().invoke(cli, ["status", "-c", str(cfg), "--json"])
    assert result.exit_code == 3, result.output
    info = json.loads(result.output)
    assert info["running"] is False
    assert info["spool"]["heartbeats"] == 2 and info["spool"]["dropped"] == 0
    assert _snapshot(spool_dir) == before  # nothing repaired, counted or created


def test_status_without_state_dir_creates_nothing(tmp_path):
    cfg = _config(tmp_path)
    result = CliRunner().invoke(cli, ["status", "-c", str(cfg), "--json"])
    assert result.exit_code == 3 and json.loads(result.output)["spool"]["heartbeats"] == 0
    assert not (tmp_path / "state").exists()


def test_stop_without_permission_is_a_clean_error(tmp_path, monkeypatch):
    cfg = _config(tmp_path)
    state.ensure_dir(tmp_path / "state")
    state.write_pid(tmp_path / "state", os.getpid())  # alive, "owned by someone else"
    real_kill = os.kill

    def kill(pid, sig):
        if sig == signal.SIGTERM:
            raise PermissionError(1, "Operation not permitted")
        return real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    result = CliRunner().invoke(cli, ["stop", "-c", str(cfg)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # not a PermissionError traceback
    assert "permission denied" in result.output and "Traceback" not in result.output


def test_pid_file_lock_admits_one_agent(tmp_path):
    d = state.ensure_dir(tmp_path / "state")
    fd = state.acquire_pid_file(d)
    try:
        assert state.read_pid(d) == os.getpid()
        with pytest.raises(state.AlreadyRunning) as info:
            state.acquire_pid_file(d)  # a second start, even with the same PID
        assert info.value.pid == os.getpid()
    finally:
        state.release_pid_file(d, fd)
    assert not (d / state.PID_FILE).exists()
    fd = state.acquire_pid_file(d)  # free again
    state.release_pid_file(d, fd)


def test_stale_pid_file_is_replaced(tmp_path):
    d = state.ensure_dir(tmp_path / "state")
    (d / state.PID_FILE).write_text("999999999\n")  # no such process
    fd = state.acquire_pid_file(d)
    try:
        assert (d / state.PID_FILE).read_text().strip() == str(os.getpid())
    finally:
        state.release_pid_file(d, fd)


def test_register_writes_config_atomically_0600(tmp_path, pulse):
    path = tmp_path / "beacon.yaml"
    path.write_text("probes: []\nreport_interval_seconds: 30\n")
    args = [
        "register",
        "-c",
        str(path),
        "--server",
        pulse.url,
        "--enroll-token",
        "e",
        "--name",
        "n1",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(path.read_text())
    assert doc["node_id"] == pulse.node_id and doc["token"] == pulse.token
    assert doc["report_interval_seconds"] == 30
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beacon.yaml"]  # no temp left


def test_register_failure_mid_write_keeps_the_old_file(tmp_path, pulse, monkeypatch):
    path = tmp_path / "beacon.yaml"
    original = "probes: []\nreport_interval_seconds: 30\n"
    path.write_text(original)

    def broken_dump(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(yaml, "safe_dump", broken_dump)
    args = [
        "register",
        "-c",
        str(path),
        "--server",
        pulse.url,
        "--enroll-token",
        "e",
        "--name",
        "n1",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert path.read_text() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beacon.yaml"]
