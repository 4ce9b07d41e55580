"""`pip install .` (the wheel, no extras) is the agent and SDK alone, and it works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.agent_run import (
    check_probe,
    check_start,
    check_version,
    clean_env,
    installed_server_modules,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def agent_venv(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed offline, without extras."""
    venv = tmp_path_factory.mktemp("agent-venv") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    done = subprocess.run(
        [*pip, "install", "--quiet", "--no-index", "--find-links", str(wheelhouse), "pulse-beacon"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return venv


def test_wheel_without_extras_installs_no_server_dependency(agent_venv, tmp_path):
    pip = [sys.executable, "-m", "pip", "--python", str(agent_venv / "bin" / "python")]
    listed = subprocess.run(
        [*pip, "list", "--format", "json"], capture_output=True, text=True, timeout=120, check=True
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"pulse-beacon", "requests", "pyyaml", "click"} <= names
    server = {"flask", "sqlalchemy", "celery", "redis", "psycopg2", "psycopg2-binary"}
    assert not names & server, names & server
    env = clean_env(tmp_path)
    assert installed_server_modules(str(agent_venv / "bin" / "python"), env, tmp_path) == []


def test_wheel_agent_runs(agent_venv, tmp_path):
    cmd = [str(agent_venv / "bin" / "beacon")]
    env = clean_env(tmp_path)
    check_version(cmd, env, tmp_path)
    check_probe(cmd, env, tmp_path)
    check_start(cmd, env, tmp_path)
