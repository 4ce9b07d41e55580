"""The Procfile as a PaaS runs it: each line through a shell, in a clean environment with
only the platform's variables (SPEC §2, §13) — the release phase before any web process
has run, with PROMETHEUS_MULTIPROC_DIR pointing at a folder nobody has created yet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import ROOT, wait_until
from tests.support.servers import free_port, wait_for_port

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def platform_env(server_env: dict, tmp_path: Path, port: int) -> dict:
    """What a PaaS gives a process: its variables and a PATH with the app's tools."""
    return {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "PORT": str(port),
            "PULSE_ENV": "production", "WEB_CONCURRENCY": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus" / "multiproc"),
            **{k: server_env[k] for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY",
                                          "PULSE_REDIS_PREFIX")}}


def test_release_then_web_as_a_paas_runs_them(server_env, tmp_path):
    commands = procfile()
    assert set(commands) == {"web", "worker", "beat", "release"}
    port = free_port()
    env = platform_env(server_env, tmp_path, port)
    assert not Path(env["PROMETHEUS_MULTIPROC_DIR"]).exists()
    release = subprocess.run(["/bin/sh", "-c", commands["release"]], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=180)
    assert release.returncode == 0, release.stderr[-2000:]
    web = subprocess.Popen(["/bin/sh", "-c", f"exec {commands['web']}"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)
    try:
        wait_for_port(port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
        assert wait_until(lambda: requests.get(f"{base}/readyz", timeout=10).status_code
                          == 200, 20, message="ready")
        metrics = requests.get(f"{base}/metrics", timeout=10)
        assert metrics.status_code == 200 and "pulse_http_requests_total" in metrics.text
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(30)
