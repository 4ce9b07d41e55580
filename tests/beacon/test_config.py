import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from beacon.cli import cli
from beacon.config import BeaconConfigError, is_valid_target, load

GOOD = """\
pulse_server: "https://pulse.example.com"
node_id: "n1"
node_name: "beacon-01"
token: "tok"
report_interval_seconds: 30
state_dir: "{state}"
probes:
  - type: "tcp"
    target: "192.168.1.1"
    port: 80
  - type: "UDP_PING"
    target: "Example.com"
    port: 7
    timeout_seconds: 2
    interval_seconds: 120
    count: 3
"""


def write(tmp_path, text, name="beacon.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(path, require_pulse=True):
    with pytest.raises(BeaconConfigError) as info:
        load(path, require_pulse=require_pulse)
    return info.value.problems


def test_good_file_and_defaults(tmp_path):
    cfg = load(write(tmp_path, GOOD.format(state=tmp_path / "st")))
    assert cfg.report_interval_seconds == 30 and cfg.tls_verify is True
    tcp, udp = cfg.probes
    assert (tcp.type, tcp.timeout_seconds, tcp.interval_seconds, tcp.count) == ("TCP", 5, 60, 10)
    assert (udp.type, udp.target, udp.count) == ("UDP", "Example.com", 3)
    assert cfg.state_dir == tmp_path / "st"


def test_spool_dir_alias_and_default_state_dir(tmp_path, monkeypatch):
    path = write(tmp_path, "pulse_server: http://x\nnode_id: n\ntoken: t\nspool_dir: sp\n")
    assert load(path).state_dir == tmp_path / "sp"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    path = write(tmp_path, "pulse_server: http://x\nnode_id: n\ntoken: t\n")
    assert load(path).state_dir == tmp_path / "xdg" / "beacon"


def test_token_file(tmp_path):
    (tmp_path / "tok").write_text("secret\n")
    path = write(tmp_path, "pulse_server: http://x\nnode_id: n\ntoken_file: tok\n")
    assert load(path).token == "secret"
    path = write(tmp_path, "pulse_server: http://x\nnode_id: n\ntoken_file: missing\n")
    assert problems(path)[0].startswith(f"{path}: token_file: cannot read")


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        (
            "{type: TCP, target: h.example, port: 70000}",
            "probes[0].port: must be 1-65535, got 70000",
        ),
        ("{type: TCP, target: h.example, port: 0}", "probes[0].port: must be 1-65535, got 0"),
        (
            "{type: TCP, target: h.example, port: '80'}",
            "probes[0].port: must be an integer, got '80'",
        ),
        ("{type: TCP, target: h.example}", "probes[0].port: required"),
        (
            "{type: icmp, target: h.example, port: 1}",
            "probes[0].type: must be one of TCP, UDP, tcp_ping, udp_ping, got 'icmp'",
        ),
        ("{target: h.example, port: 1}", "probes[0].type: required"),
        ("{type: TCP, port: 1}", "probes[0].target: required"),
        (
            "{type: TCP, target: 256.1.1.1, port: 1}",
            "probes[0].target: must be an IP address or a valid host name, got '256.1.1.1'",
        ),
        (
            "{type: TCP, target: h.example, port: 1, timeout_seconds: 31}",
            "probes[0].timeout_seconds: must be 1-30, got 31",
        ),
        (
            "{type: TCP, target: h.example, port: 1, interval_seconds: 59}",
            "probes[0].interval_seconds: must be 60-300, got 59",
        ),
        (
            "{type: TCP, target: h.example, port: 1, count: 101}",
            "probes[0].count: must be 1-100, got 101",
        ),
        ("{type: TCP, target: h.example, port: 1, colour: red}", "probes[0].colour: unknown field"),
        (
            "{type: TCP, target: h.example, port: 1, enabled: maybe}",
            "probes[0].enabled: must be true or false, got 'maybe'",
        ),
        ("42", "probes[0]: must be a mapping, got 42"),
    ],
)
def test_probe_errors(tmp_path, probe, expected):
    path = write(tmp_path, f"pulse_server: http://x\nnode_id: n\ntoken: t\nprobes:\n  - {probe}\n")
    assert problems(path) == [f"{path}: {expected}"]


def test_every_problem_reported_with_index(tmp_path):
    path = write(
        tmp_path,
        """\
        pulse_server: ftp://x
        report_interval_seconds: 0
        tls_verify: "yes"
        probes:
          - {type: TCP, target: a.example, port: 1}
          - {type: TCP, target: a.example, port: 70000}
          - {type: tcp_ping, target: A.example, port: 1}
        bogus: 1
        """,
    )
    got = problems(path)
    assert got == [
        f"{path}: bogus: unknown field",
        f"{path}: pulse_server: must be an http:// or https:// URL, got 'ftp://x'",
        f"{path}: node_id: required",
        f"{path}: token: required (or token_file)",
        f"{path}: report_interval_seconds: must be 1-3600, got 0",
        f"{path}: tls_verify: must be true or false, got 'yes'",
        f"{path}: probes[1].port: must be 1-65535, got 70000",
        f"{path}: probes[2]: duplicate of probes[0] (TCP A.example:1)",
    ]


def test_report_interval_bounds(tmp_path):
    path = write(
        tmp_path, "pulse_server: http://x\nnode_id: n\ntoken: t\nreport_interval_seconds: 3601\n"
    )
    assert problems(path) == [f"{path}: report_interval_seconds: must be 1-3600, got 3601"]


def test_yaml_syntax_and_missing_file(tmp_path):
    path = write(tmp_path, "probes: [\n  - a: b\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}: invalid YAML: line ") and "\n" not in line
    assert problems(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: no such file"]
    assert problems(write(tmp_path, "- 1\n- 2\n")) == [
        f"{path}: must be a mapping of settings, got list"
    ]


def test_targets():
    for ok in ("1.2.3.4", "::1", "a.b-c.example", "localhost", "x" * 63 + ".io"):
        assert is_valid_target(ok), ok
    for bad in ("256.1.1.1", "a..b", "-a.com", "a-.com", "x" * 64 + ".io", "a_b.com", "", "1.2.3"):
        assert not is_valid_target(bad), bad


@pytest.mark.parametrize(
    ("command", "exit_code"), [("start", 2), ("debug", 2), ("status", 3), ("stop", 0)]
)
def test_cli_bad_file_no_traceback(tmp_path, command, exit_code):
    """start/debug refuse a bad file (2); status/stop still work from the state dir,
    naming the problem (tests/beacon/test_cli_broken_config.py has the details)."""
    path = write(
        tmp_path,
        "pulse_server: http://x\nnode_id: n\ntoken: t\nprobes:\n"
        "  - {type: TCP, target: h.example, port: 1}\n"
        "  - {type: TCP, target: h.example, port: 70000}\n",
    )
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    result = CliRunner().invoke(cli, [command, "-c", str(path)], env=env)
    assert result.exit_code == exit_code, result.output
    assert f"{path}: probes[1].port: must be 1-65535, got 70000" in result.output
    assert "Traceback" not in result.output


def test_subprocess_missing_file_and_yaml_error(tmp_path):
    bad = write(tmp_path, "a: [1,\n")
    for path in (bad, tmp_path / "missing.yaml"):
        proc = subprocess.run(
            [sys.executable, "-m", "beacon.cli", "start", "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert proc.stderr.startswith(str(path))


def _start(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "beacon.cli", "start", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        ("node_name: [1, 2]\n", "node_name: must be a string, got [1, 2]"),
        ("region: {a: 1}\n", "region: must be a string, got {'a': 1}"),
    ],
)
def test_subprocess_bad_node_name_or_region(tmp_path, extra, line):
    path = write(tmp_path, f"pulse_server: http://127.0.0.1:9\nnode_id: n\ntoken: t\n{extra}")
    proc = _start(path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"{path}: {line}"]


def test_node_name_checked_with_other_problems(tmp_path):
    path = write(tmp_path, "pulse_server: http://x\nnode_id: n\ntoken: t\nnode_name: [1]\nfoo: 1\n")
    assert problems(path) == [
        f"{path}: foo: unknown field",
        f"{path}: node_name: must be a string, got [1]",
    ]


@pytest.mark.parametrize("state_dir", ["/proc/nope", "{file}"])
def test_subprocess_unusable_state_dir(tmp_path, state_dir):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    state_dir = state_dir.format(file=afile)
    path = write(
        tmp_path,
        f"pulse_server: http://127.0.0.1:9\nnode_id: n\ntoken: t\nstate_dir: {state_dir}\n",
    )
    proc = _start(path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"{path}: state_dir: cannot create") and state_dir in line
