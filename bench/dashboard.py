"""Dashboard server time (SPEC §9: ≤ 150 ms) against `GET /healthz` in the same run.

    .venv/bin/python bench/dashboard.py [--nodes 1000] [--requests 30]

Starts a throwaway PostgreSQL and Redis (tests/support/servers.py), migrates, and seeds
--nodes nodes, each with 10 TCP probes to the same 10 targets (the matrix is 1,000 × 10),
a live hour of node summaries (a point a minute), today's presence bits and a latest run
per probe in Redis. One node also gets 24 h of minute aggregates for its 10 probes in
PostgreSQL (14,400 rows), the blocks the hourly roll-up packs of its finished hours
(app.history.blocks), and a live hour of runs, for its chart data.

Then, signed in through the login form, it times in-process (Flask's test client: the
server's own time, no HTTP client or socket in the figure) --requests requests each of:

* `GET /healthz` — the baseline: no session, no database;
* `GET /` — the overview, first page of 100 of all nodes (sorted by name), with the
  status counts, uptime and sparklines;
* `GET /?sort=latency&dir=desc` — sorted on a Redis-held value (every node read);
* `GET /matrix` — first page of 100 nodes × 10 columns;
* `GET /nodes/<id>/data?range=24h` — 10 probes, 24 h at 1m (the node page's charts).

It prints median, p95 and max per endpoint and the median's ratio to /healthz's. The
collector is frozen after start-up, as gunicorn.conf.py does in every worker.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import re
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.servers import PostgresServer, RedisServer  # noqa: E402

TARGETS = [f"198.51.100.{i}" for i in range(1, 11)]
PASSWORD = "bench-password-123"


def seed(app, nodes: int) -> str:
    """Nodes, probes, live data and one node's 24 h of minutes; the charted node's id."""
    from sqlalchemy import insert

    from app.extensions import db, get_redis
    from app.history import blocks
    from app.history.live_cache import NODE_SERIES, Point, encode_member
    from app.models import Metric, Node, Probe
    from app.redis_keys import live_key, node_seen_key
    from app.services.auth import create_user
    from app.services.presence import mark_present
    from app.timeutil import to_ms

    rng = random.Random(1)
    now = datetime.now(UTC)
    create_user("bench@example.test", PASSWORD, "operator")
    node_rows, probe_rows = [], []
    for i in range(nodes):
        node_id = uuid.uuid4()
        node_rows.append({"id": node_id, "name": f"node-{i:04d}", "region": f"r{i % 7}",
                          "labels": {}, "metadata_": {}, "token_hash": uuid.uuid4().hex * 2,
                          "first_seen_at": now - timedelta(days=2),
                          "last_seen_at": now - timedelta(seconds=30)})
        for port_index, target in enumerate(TARGETS):
            probe_rows.append({"id": uuid.uuid4(), "node_id": node_id, "type": "TCP",
                               "target": target, "port": 443 + port_index, "name": None,
                               "interval_seconds": 60, "count": 10, "timeout_seconds": 5,
                               "enabled": True, "source": "api"})
    db.session.execute(insert(Node), node_rows)
    db.session.execute(insert(Probe), probe_rows)
    db.session.commit()
    handle = get_redis()
    pipe = handle.client.pipeline(transaction=False)
    now_ms = to_ms(now)
    for row in node_rows:
        node_id = str(row["id"])
        pipe.hset(node_seen_key(handle.prefix, node_id), mapping={
            "last_seen_ms": now_ms - 30_000, "first_seen_ms": now_ms - 2 * 86400_000})
        for minute in range(60):
            ts = now - timedelta(minutes=minute)
            mark_present(pipe, handle.prefix, node_id, ts)
            point = Point(NODE_SERIES, to_ms(ts), rng.uniform(5, 80), rng.choice([0, 0, 5]),
                          rng.uniform(0, 3))
            pipe.zadd(live_key(handle.prefix, node_id, NODE_SERIES),
                      {encode_member(point): point.ts_ms})
    for probe in probe_rows:
        point = Point(str(probe["id"]), now_ms - 20_000, rng.uniform(5, 80), 0.0, 1.0,
                      4.0, 10.0, 15.0, 20.0, 10, 10, None)
        pipe.zadd(live_key(handle.prefix, str(probe["node_id"]), str(probe["id"])),
                  {encode_member(point): point.ts_ms})
    pipe.execute()
    charted = node_rows[0]["id"]
    charted_probes = [p for p in probe_rows if p["node_id"] == charted]
    start = (now - timedelta(hours=24)).replace(second=0, microsecond=0)
    rows = []
    for probe in charted_probes:
        for minute in range(24 * 60):
            latency = rng.uniform(10, 30)
            rows.append({"node_id": charted, "probe_id": probe["id"], "is_aggregated": True,
                         "timestamp": start + timedelta(minutes=minute),
                         "latency_ms": latency, "packet_loss_rate": 0.0, "jitter_ms": 1.0,
                         "latency_min_ms": latency - 2, "latency_median_ms": latency - 0.5,
                         "latency_p95_ms": latency + 2, "latency_max_ms": latency + 4,
                         "jitter_max_ms": 2.0, "packet_loss_max": 0.0, "sample_count": 1,
                         "sent": 10, "received": 10})
    for chunk in range(0, len(rows), 2000):
        db.session.execute(insert(Metric), rows[chunk:chunk + 2000])
    # what the hourly roll-up packs of them (app.history.blocks): every finished hour
    first_hour = start.replace(minute=0)
    finished = [first_hour + timedelta(hours=h)
                for h in range(int((now - first_hour) // timedelta(hours=1)))]
    blocks.write(blocks.MINUTES, [(probe["id"], hour) for probe in charted_probes
                                  for hour in finished])
    db.session.commit()
    for probe in charted_probes:
        for minute in range(60):
            ts_ms = now_ms - minute * 60_000
            point = Point(str(probe["id"]), ts_ms, 20.0, 0.0, 1.0, 18.0, 19.5, 22.0, 24.0,
                          10, 10, None)
            pipe.zadd(live_key(handle.prefix, str(charted), str(probe["id"])),
                      {encode_member(point): ts_ms})
    pipe.execute()
    return str(charted)


def sign_in(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"email": "bench@example.test", "password": PASSWORD,
                                         "csrf_token": token})
    assert answer.status_code == 302, answer.status_code


def timed(client, path: str, count: int) -> tuple[list[float], list[float]]:
    """(wall ms, this process's CPU ms) per request. The CPU figure leaves out PostgreSQL
    and Redis but also the other processes sharing the 2 cores."""
    for _ in range(3):  # warm-up
        assert client.get(path).status_code == 200, path
    times, cpu = [], []
    for _ in range(count):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        assert response.status_code == 200, path
    return times, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    pg, redis_server = PostgresServer(), RedisServer()
    pg.start()
    redis_server.start()
    try:
        from flask_migrate import upgrade

        from app import create_app
        from app.config import Config

        env = {"DATABASE_URL": pg.create_database("bench_dash"), "REDIS_URL": redis_server.url,
               "SECRET_KEY": "bench-" + "s" * 40, "PULSE_NODE_RATE_LIMIT": "0"}
        app = create_app(Config(env))
        with app.app_context():
            upgrade()
            started = time.perf_counter()
            charted = seed(app, args.nodes)
            seeded_s = time.perf_counter() - started
        client = app.test_client()
        sign_in(client)
        # as gunicorn.conf.py's post_worker_init does in every production worker (there
        # the seed's objects would not be in the web process at all)
        gc.collect()
        gc.freeze()
        paths = ["/healthz", "/", "/?sort=latency&dir=desc", "/matrix",
                 f"/nodes/{charted}/data?range=24h"]
        print(f"# bench/dashboard.py — {args.nodes} nodes × 10 probes, {args.requests} "
              f"requests each, in-process; Python {platform.python_version()}, "
              f"{os.cpu_count()} cores; seeded in {seeded_s:.1f} s")
        print(f"{'endpoint':44} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} "
              f"{'CPU ms':>7} {'× healthz':>10}")
        baseline = None
        for path in paths:
            wall, cpu = timed(client, path, args.requests)
            times = sorted(wall)
            median = statistics.median(times)
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            baseline = baseline or median
            label = path if "/data" not in path else "/nodes/<id>/data?range=24h (10 probes)"
            print(f"{label:44} {median:10.1f} {p95:8.1f} {times[-1]:8.1f} "
                  f"{statistics.median(cpu):7.1f} {median / baseline:10.1f}")
        with app.app_context():
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()
    finally:
        redis_server.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    main()
