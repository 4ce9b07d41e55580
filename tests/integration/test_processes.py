"""Pulse as operators run it: `make run`'s embedded mode, and gunicorn with /metrics."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import ROOT, SECRET, wait_until
from tests.integration.helpers import heartbeat, recent
from tests.support.servers import free_port, wait_for_port

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    handle = open(log, "w")  # noqa: SIM115 (the child owns it)
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=handle,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def bootstrap(base: str, env: dict, admin_email: str) -> dict:
    """Node + probe through the HTTP API with a user created by the CLI."""
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "users", "create", admin_email,
                    "--role", "admin", "--password-stdin"], input="admin-password\n",
                   text=True, cwd=ROOT, env={**os.environ, **env}, check=True,
                   capture_output=True)
    token = requests.post(f"{base}/api/v1/auth/login", json={
        "email": admin_email, "password": "admin-password"}, timeout=10).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    node = requests.post(f"{base}/api/v1/nodes", json={"name": "n-" + uuid.uuid4().hex[:6]},
                         headers=auth, timeout=10).json()
    probe = requests.post(f"{base}/api/v1/probes", json={
        "node_id": node["id"], "type": "udp", "target": "127.0.0.1", "port": 7},
        headers=auth, timeout=10).json()
    return {"auth": auth, "node": node, "probe": probe,
            "node_auth": {"Authorization": f"Bearer {node['token']}"}}


def start_recycling_gunicorn(env: dict, log: Path, max_requests: int, admin_email: str
                             ) -> tuple[subprocess.Popen, str, dict]:
    """gunicorn (2 workers, each recycled after `max_requests` so requests spread over
    several processes) with a node and probe bootstrapped: (process, base URL, ids)."""
    port = free_port()
    env.update(PORT=str(port), WEB_CONCURRENCY="2")
    proc = start([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind",
                  f"127.0.0.1:{port}", "--max-requests", str(max_requests), "wsgi:app"], env,
                 log)
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        return proc, base, bootstrap(base, env, admin_email)
    except BaseException:
        stop(proc)
        raise


def test_embedded_mode_flows_end_to_end(tmp_path):
    """No REDIS_URL: fakeredis in-process, tasks run by the embedded scheduler."""
    db_path = tmp_path / "pulse.db"
    port = free_port()
    env = {"DATABASE_URL": f"sqlite:///{db_path}", "SECRET_KEY": SECRET, "REDIS_URL": "",
           "CELERY_BROKER_URL": ""}
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                   env={**os.environ, **env}, check=True, capture_output=True)
    proc = start([str(BIN / "flask"), "--app", "wsgi", "serve", "--port", str(port)], env,
                 tmp_path / "flask.log")
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        ctx = bootstrap(base, env, "admin@embedded.test")
        for i in range(3):
            body = heartbeat(ctx["node"]["id"], [ctx["probe"]["id"]], recent(200 - i * 30))
            r = requests.post(f"{base}/api/v1/beacon/heartbeat", json=body,
                              headers=ctx["node_auth"], timeout=10)
            assert r.status_code == 200, r.text
        live = requests.get(f"{base}/api/v1/nodes/{ctx['node']['id']}/live",
                            headers=ctx["auth"], timeout=10).json()
        assert len(live["probes"][0]["points"]) == 3

        def rows() -> int:
            with sqlite3.connect(db_path) as conn:
                return conn.execute("SELECT count(*) FROM metrics").fetchone()[0]

        # the in-process scheduler flushes every 10 s
        wait_until(lambda: rows() >= 3, 30, interval=0.5, message="embedded flush")
        docs = requests.get(f"{base}/docs", timeout=10)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        assert "https://" not in docs.text and "http://" not in docs.text.replace(base, "")
    finally:
        stop(proc)
    assert "embedded mode" in (tmp_path / "flask.log").read_text()


def test_gunicorn_metrics_across_workers(server_env, pg_app, tmp_path):
    metrics_dir = tmp_path / "prom"
    env = {**server_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    # Workers recycle every 15 requests, so the 40 heartbeats are surely spread over
    # several processes, some of them dead by the scrape (gunicorn's child_exit hook).
    proc, base, ctx = start_recycling_gunicorn(env, tmp_path / "gunicorn.log", 15,
                                               "admin@gunicorn.test")
    try:
        session = requests.Session()
        for i in range(40):
            body = heartbeat(ctx["node"]["id"], [ctx["probe"]["id"]], recent(300 - i))
            assert session.post(f"{base}/api/v1/beacon/heartbeat", json=body,
                                headers=ctx["node_auth"], timeout=10).status_code == 200
        bad = heartbeat(ctx["node"]["id"], [ctx["probe"]["id"]], recent(10))
        bad["latency_ms"] = -1  # one failing field: its own code
        assert session.post(f"{base}/api/v1/beacon/heartbeat", json=bad,
                            headers=ctx["node_auth"], timeout=10).status_code == 400
        # scrape several times: whichever worker answers, the counts are the sum of both
        for _ in range(4):
            text = session.get(f"{base}/metrics", timeout=10).text
            accepted = [line for line in text.splitlines()
                        if line.startswith('pulse_heartbeats_total{outcome="accepted"}')]
            assert accepted and float(accepted[0].split()[-1]) == 40.0, accepted
            assert 'pulse_heartbeats_total{outcome="ERR_INVALID_METRICS"} 1.0' in text
            assert "pulse_pending_points" in text and "pulse_http_requests_total" in text
        pids = {p.name for p in metrics_dir.iterdir()}
        assert len([p for p in pids if p.startswith("counter_")]) >= 3, pids
    finally:
        stop(proc)
    time.sleep(0.1)
