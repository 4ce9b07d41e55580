"""`make run`'s embedded mode stopped with SIGTERM while heartbeats stream in (issue 10).

Every heartbeat answered 200 is in the database after the stop, every minute it touched is
aggregated, and the restarted Pulse (with an empty in-process Redis) still answers the
live hour from the database.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.integration.conftest import ROOT, SECRET, wait_until
from tests.integration.helpers import iso
from tests.integration.test_processes import BIN, bootstrap, start, stop
from tests.support.servers import free_port, wait_for_port

pytestmark = pytest.mark.integration
STREAM_SECONDS = 20.0  # upper bound of the posting loop


def test_sigterm_mid_stream_loses_nothing_and_aggregates_every_minute(tmp_path):
    db_path = tmp_path / "pulse.db"
    port = free_port()
    env = {"DATABASE_URL": f"sqlite:///{db_path}", "SECRET_KEY": SECRET, "REDIS_URL": "",
           "CELERY_BROKER_URL": "", "PULSE_NODE_RATE_LIMIT": "0"}
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                   env={**os.environ, **env}, check=True, capture_output=True)
    serve = [str(BIN / "flask"), "--app", "wsgi", "serve", "--port", str(port)]
    proc = start(serve, env, tmp_path / "serve-1.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port)
        ctx = bootstrap(base, env, "admin@restart.test")
        node_id, probe_id = ctx["node"]["id"], ctx["probe"]["id"]
        accepted: list[str] = []
        # Points 3 s apart from five minutes back, so the stop leaves several minutes to
        # aggregate, the newest one still open.
        first = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        stop_posting = threading.Event()

        def post() -> None:
            session = requests.Session()
            deadline = time.monotonic() + STREAM_SECONDS
            for i in range(2000):
                if stop_posting.is_set() or time.monotonic() > deadline:
                    return
                ts = iso(first + timedelta(seconds=3 * i))
                body = {"node_id": node_id, "timestamp": ts, "latency_ms": 5.0,
                        "packet_loss_rate": 0.0, "jitter_ms": 0.5,
                        "results": [{"probe_id": probe_id, "latency_ms": 5.0 + i % 7,
                                     "packet_loss_rate": 0.0, "jitter_ms": 0.5}]}
                try:
                    answer = session.post(f"{base}/api/v1/beacon/heartbeat", json=body,
                                          headers=ctx["node_auth"], timeout=5)
                except requests.RequestException:
                    continue  # stopping or stopped: not accepted, a Beacon would spool it
                if answer.status_code == 200:
                    accepted.append(ts)

        poster = threading.Thread(target=post)
        poster.start()
        wait_until(lambda: len(accepted) >= 40, 15, message="heartbeats accepted")
        os.killpg(proc.pid, signal.SIGTERM)  # as Ctrl-C or a service manager would
        assert proc.wait(30) == 0
        stop_posting.set()
        poster.join(10)
        assert not poster.is_alive()
    finally:
        stop(proc)
    log = (tmp_path / "serve-1.log").read_text()
    assert "stopping" in log and "rows flushed" in log

    with sqlite3.connect(db_path) as conn:
        raw = conn.execute("SELECT count(*), count(DISTINCT timestamp) FROM metrics "
                           "WHERE is_aggregated = 0").fetchone()
        minutes = conn.execute(
            "SELECT substr(timestamp, 1, 16) AS minute, count(*) FROM metrics "
            "WHERE is_aggregated = 0 GROUP BY minute").fetchall()
        aggregates = dict(conn.execute(
            "SELECT substr(timestamp, 1, 16), sample_count FROM metrics "
            "WHERE is_aggregated = 1").fetchall())
    assert raw == (len(accepted), len(accepted)), "every 200 stored, once"
    assert len(minutes) >= 2
    assert aggregates == dict(minutes), "every minute aggregated with all its runs"

    port2 = free_port()
    proc = start([*serve[:-1], str(port2)], env, tmp_path / "serve-2.log")
    try:
        wait_for_port(port2)
        token = requests.post(f"http://127.0.0.1:{port2}/api/v1/auth/login", json={
            "email": "admin@restart.test", "password": "admin-password"}, timeout=10).json()
        answer = requests.get(
            f"http://127.0.0.1:{port2}/api/v1/nodes/{node_id}/metrics",
            params={"probe_id": probe_id, "resolution": "raw"},
            headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10).json()
        def instant(stamp: str) -> datetime:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

        assert [instant(p["timestamp"]) for p in answer["points"]] == sorted(
            instant(ts) for ts in accepted)
    finally:
        stop(proc)
