"""The node rate limit holds across API processes: gunicorn with two workers recycled
every few requests, so a node's heartbeats are answered by several processes, which count
together in Redis; the refused ones are in none of Redis's queues."""

from __future__ import annotations

import pytest
import redis
import requests

from app.redis_keys import pending_stream
from tests.integration.helpers import heartbeat, recent
from tests.integration.test_processes import start_recycling_gunicorn, stop

pytestmark = pytest.mark.integration


def test_processes_count_together(server_env, pg_app, tmp_path):
    env = {**server_env, "PULSE_NODE_RATE_LIMIT": "8/minute"}
    proc, base, ctx = start_recycling_gunicorn(env, tmp_path / "gunicorn.log", 3,
                                               "admin@limit.test")
    try:
        statuses, pids = [], set()
        for i in range(12):
            body = heartbeat(ctx["node"]["id"], [ctx["probe"]["id"]], recent(60 - i))
            # a new connection each time: any worker may answer
            response = requests.post(f"{base}/api/v1/beacon/heartbeat", json=body,
                                     headers=ctx["node_auth"], timeout=10)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json()["code"] == "ERR_RATE_LIMITED"
                assert 1 <= int(response.headers["Retry-After"]) <= 60
        pids = {line.split("pid: ")[1].split()[0].rstrip(")")
                for line in (tmp_path / "gunicorn.log").read_text().splitlines()
                if "Booting worker with pid" in line}
    finally:
        stop(proc)
    assert statuses == [200] * 8 + [429] * 4
    assert len(pids) >= 3  # the heartbeats were answered by several processes
    client = redis.Redis.from_url(server_env["REDIS_URL"])
    assert client.xlen(pending_stream(server_env["PULSE_REDIS_PREFIX"])) == 8
