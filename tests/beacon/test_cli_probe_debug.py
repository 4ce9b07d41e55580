"""`beacon probe` prints samples as they come and summarises on Ctrl-C; `beacon debug`
runs the probe set the agent runs (local + Pulse's list) and says what Pulse overrides."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml
from click.testing import CliRunner

from beacon.cli import cli
from beacon.cli.probing import effective_probe_set
from beacon.probes import ProbeSpec

BEACON = [sys.executable, "-m", "beacon.cli"]


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    yield srv.getsockname()[1]
    srv.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_probe_streams_samples_and_summarises_on_ctrl_c(listener):
    proc = subprocess.Popen(
        [*BEACON, "probe", "tcp", "127.0.0.1", str(listener), "-c", "100", "-i", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 15
        while sum("seq=" in line for line in lines) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        # three samples are out while 97 are still to come: printed as they came
        assert sum("seq=" in line for line in lines) >= 3, lines
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        reader.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    out = "".join(lines)
    seqs = [line for line in lines if line.startswith("seq=")]
    assert seqs[0].startswith(f"seq=1 127.0.0.1:{listener} time=") and seqs[0].endswith(" ms\n")
    sent = len(seqs)
    assert 3 <= sent < 100
    # the summary counts what was measured, no more (the sample in flight is not lost)
    assert f"{sent} sent, {sent} received, 0% loss" in out, out
    assert "rtt min/avg/median/max/p95 = " in out
    assert "Traceback" not in proc.stderr.read()


def test_probe_lost_samples_read_as_their_error():
    port = closed_port()
    result = CliRunner().invoke(cli, ["probe", "tcp", "127.0.0.1", str(port), "-c", "2", "-i", "0"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"seq=1 127.0.0.1:{port} refused" in lines and f"seq=2 127.0.0.1:{port} refused" in lines
    assert "2 sent, 0 received, 100% loss (2 refused)" in lines
    assert "lost" not in result.output and " ms" not in result.output


def test_udp_probe_without_echo_reads_timeout():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    try:
        args = ["probe", "udp", "127.0.0.1", str(port), "-c", "2", "-t", "0.2", "-i", "0"]
        result = CliRunner().invoke(cli, args)
    finally:
        silent.close()
    assert result.exit_code == 1
    assert f"seq=1 127.0.0.1:{port} timeout" in result.output.splitlines()
    assert "2 sent, 0 received, 100% loss (2 timeout)" in result.output


def test_probe_json_is_one_object_at_the_end(listener):
    args = ["probe", "tcp", "127.0.0.1", str(listener), "-c", "2", "-i", "0", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0
    data = json.loads(result.output)  # nothing else on stdout
    assert (data["sent"], data["received"], data["error"]) == (2, 2, None)


def test_effective_probe_set_rules():
    a = ProbeSpec("TCP", "a.example", 80, count=10)
    b = ProbeSpec("UDP", "b.example", 7)
    off = ProbeSpec("TCP", "off.example", 22)
    same = ProbeSpec("TCP", "same.example", 443)
    pulse_a = ProbeSpec("TCP", "A.example", 80, count=5, interval_seconds=120, id="pa")
    pulse_c = ProbeSpec("TCP", "c.example", 25, id="pc")
    pulse_off = ProbeSpec("TCP", "off.example", 22, id="po", enabled=False)
    pulse_same = same.with_id("ps")
    local_only, notes = effective_probe_set([a, b], None)
    assert local_only == [("local", a), ("local", b)] and notes == []
    remote = [pulse_a, pulse_c, pulse_off, pulse_same]
    chosen, notes = effective_probe_set([a, b, off, same], remote)
    assert chosen == [
        ("pulse (overrides local)", pulse_a),
        ("pulse", pulse_c),
        ("local+pulse", pulse_same),
        ("local", b),
    ]
    assert notes == [
        "TCP a.example:80: local probe overridden by Pulse's (same type+target+port): "
        "interval 60→120, count 10→5",
        "TCP off.example:22: local probe disabled in Pulse, not run",
        "UDP b.example:7: not in Pulse's list yet; `beacon start` declares it",
    ]


def _debug_config(tmp_path, pulse, port, **extra):
    path = tmp_path / "beacon.yaml"
    doc = {
        "pulse_server": pulse.url,
        "node_id": pulse.node_id,
        "token": pulse.token,
        "state_dir": str(tmp_path / "state"),
        "probes": [
            {"type": "TCP", "target": "127.0.0.1", "port": port, "count": 3},
            {"type": "TCP", "target": "localhost", "port": port, "count": 1},
        ],
        **extra,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_debug_runs_pulse_list_and_names_the_override(tmp_path, pulse, listener):
    pulse.add_api_probe(type="TCP", target="127.0.0.1", port=listener, count=2)
    other = closed_port()
    api_only = pulse.add_api_probe(type="TCP", target="127.0.0.1", port=other, count=1)
    cfg = _debug_config(tmp_path, pulse, listener)
    result = subprocess.run(
        [*BEACON, "debug", "-c", str(cfg), "--json"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runs = {(r["target"], r["port"]): r for r in json.loads(result.stdout)}  # notes on stderr
    assert set(runs) == {("127.0.0.1", listener), ("localhost", listener), ("127.0.0.1", other)}
    overridden = runs[("127.0.0.1", listener)]
    assert overridden["source"] == "pulse (overrides local)" and overridden["sent"] == 2
    assert runs[("localhost", listener)]["source"] == "local"
    assert runs[("127.0.0.1", other)]["source"] == "pulse"
    assert runs[("127.0.0.1", other)]["probe_id"] == api_only["id"]
    assert runs[("127.0.0.1", other)]["error"] == "ERR_CONNECTION_REFUSED"
    assert (
        f"TCP 127.0.0.1:{listener}: local probe overridden by Pulse's (same type+target+port): "
        "count 3→2"
    ) in result.stderr
    assert ("PUT", "/api/v1/beacon/probes", 200) not in pulse.requests  # debug changes nothing


def test_debug_with_pulse_unreachable_runs_local_probes(tmp_path, pulse, listener):
    cfg = _debug_config(tmp_path, pulse, listener, pulse_server=f"http://127.0.0.1:{closed_port()}")
    result = CliRunner().invoke(cli, ["debug", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("Pulse's probe list not used (connection refused to http://")
    assert first.endswith("): local probes only")
    table = result.output.splitlines()[1:]
    assert table[0].split()[:2] == ["SOURCE", "PROBE"]
    assert sum(line.startswith("local ") for line in table) == 2
