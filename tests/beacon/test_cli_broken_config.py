"""`beacon status` / `beacon stop` when beacon.yaml was broken after the agent started."""

import json
import subprocess
import sys

import yaml
from click.testing import CliRunner

from beacon import state
from beacon.cli import cli
from beacon.cli.common import state_dir_for
from tests.beacon.agentproc import Agent, beacon, wait_for, write_config


def test_running_agent_with_a_broken_file_can_be_inspected_and_stopped(tmp_path, pulse):
    cfg = write_config(tmp_path / "beacon.yaml", pulse, [])
    agent = Agent(cfg)
    try:
        wait_for(lambda: "Reporting to Pulse…" in agent.output(), 15, "first report")
        # An edit that is still YAML but invalid: its state_dir is used.
        cfg.write_text(cfg.read_text() + "probes: [{type: ICMP}]\n")
        st = beacon("status", "-c", str(cfg), "--json")
        assert st.returncode == 0, st.stderr
        info = json.loads(st.stdout)
        assert info["running"] is True and info["pid"] == agent.proc.pid
        assert info["state_dir"] == str(tmp_path / "state")
        assert "using the state_dir written in it" in st.stderr
        # Not even YAML any more: nothing to read the state dir from; the default one is
        # used and said, so the operator knows why it finds no agent there.
        cfg.write_text("state_dir: [unclosed\n")
        lost = beacon("status", "-c", str(cfg))
        assert lost.returncode == 3 and "using the default state dir" in lost.stderr
        # A broken file that still names the state dir: stop works.
        cfg.write_text(f"state_dir: {tmp_path / 'state'}\nprobes: 7\n")
        stopped = beacon("stop", "-c", str(cfg), timeout=30)
        assert stopped.returncode == 0, stopped.stderr
        assert f"beacon stopped (pid {agent.proc.pid})" in stopped.stdout
        assert "probes: must be a list, got 7" in stopped.stderr
        assert agent.proc.wait(10) == 0
    finally:
        agent.kill()


def test_state_dir_fallbacks(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"state_dir": "st"}))
    assert state_dir_for(str(good)).path == tmp_path / "st"
    assert state_dir_for(str(good)).note is None
    alias = tmp_path / "alias.yaml"
    alias.write_text("spool_dir: sp\nreport_interval_seconds: 0\n")
    choice = state_dir_for(str(alias))
    assert choice.path == tmp_path / "sp"
    assert "report_interval_seconds: must be 1-3600, got 0" in choice.note
    missing = state_dir_for(str(tmp_path / "nope.yaml"))
    assert missing.path == tmp_path / "xdg" / "beacon"
    assert "no such file" in missing.note and "default state dir" in missing.note
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("- just\n- a list\n")
    assert state_dir_for(str(garbage)).path == tmp_path / "xdg" / "beacon"


def test_stop_from_the_pid_file_of_a_broken_config(tmp_path):
    """The PID file's process gets SIGTERM though the file cannot be validated."""
    state_dir = state.ensure_dir(tmp_path / "state")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state.write_pid(state_dir, child.pid)
        cfg = tmp_path / "beacon.yaml"
        cfg.write_text(f"state_dir: {state_dir}\nunknown_key: 1\n")
        result = CliRunner().invoke(cli, ["stop", "-c", str(cfg), "--timeout", "10"])
        assert result.exit_code == 0, result.output
        assert child.wait(10) == -15  # SIGTERM
        assert f"beacon stopped (pid {child.pid})" in result.output
        assert "unknown_key: unknown field" in result.output
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
