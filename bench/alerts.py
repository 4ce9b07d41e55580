"""Alert evaluation CPU (SPEC §9: 10,000 probe subjects x 3 rules in <= 5 s of worker CPU a
minute) against the bare cost of reading each probe's latest minute, in the same run.

    .venv/bin/python bench/alerts.py [--nodes 1000] [--probes-per-node 10] [--rounds 3]

Starts a throwaway PostgreSQL and Redis and migrates (flask CLI). Creates --nodes nodes
with --probes-per-node probes each (SQL inserts), fills each probe's live cache with one
run a minute for the last 8 minutes (the encoding ingest writes; 1 % of the probes at
50 % loss and 300 ms, so some alerts open and fire), and three rules on every probe:
loss > 5 % for 3 min, latency > 100 ms for 3 min, jitter > 20 ms for 3 min.

Each round, in this process (a worker's work: an app context on those servers):
`evaluate(now)` — process CPU (time.process_time) and wall time; then the bare read
`readings.latest_runs` of every probe (one pipelined ZREVRANGEBYSCORE per probe, decoded).
Round 1 opens the alerts (inserts, events, outbox rows); later rounds are the steady state.
Redis and PostgreSQL server CPU are not in the figures (they are other processes).
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime

from pulse_stack import median, migrate_and_create_admin, print_table, throwaway_servers, verdict

TARGET_CPU_S = 5.0


def seed(app, nodes: int, per_node: int, now_ms: int) -> list[tuple[str, str, int]]:
    from sqlalchemy import insert

    from app.extensions import db, get_redis
    from app.history.live_cache import Point, encode_member
    from app.models import Node, Probe
    from app.redis_keys import live_key

    probes = []
    with app.app_context():
        node_rows, probe_rows = [], []
        for n in range(nodes):
            node_id = uuid.uuid4()
            node_rows.append({"id": node_id, "name": f"bench-{n}", "labels": {},
                              "token_hash": uuid.uuid4().hex * 2, "metadata": {}})
            for p in range(per_node):
                probe_id = uuid.uuid4()
                probe_rows.append({"id": probe_id, "node_id": node_id, "type": "TCP",
                                   "target": f"10.{n // 250}.{n % 250}.{p + 1}", "port": 443,
                                   "interval_seconds": 60, "count": 10, "timeout_seconds": 5,
                                   "source": "api", "enabled": True})
                probes.append((str(probe_id), str(node_id), 60))
        db.session.execute(insert(Node), node_rows)
        db.session.execute(insert(Probe), probe_rows)
        db.session.commit()
        handle = get_redis()
        pipe = handle.client.pipeline(transaction=False)
        minute = now_ms - now_ms % 60_000
        for i, (probe_id, node_id, _) in enumerate(probes):
            bad = i % 100 == 0
            members = {}
            for m in range(8):
                ts = minute - m * 60_000 + 10_000
                point = Point(probe_id, ts, 300.0 if bad else 12.5 + i % 7,
                              50.0 if bad else 0.0, 1.2, 11.0, 12.0, 14.0, 16.0, 10,
                              5 if bad else 10, None)
                members[encode_member(point)] = ts
            pipe.zadd(live_key(handle.prefix, node_id, probe_id), members)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
    return probes


def create_rules(app) -> None:
    from app.alerts.rules import create_rule

    with app.app_context():
        for metric, threshold in (("packet_loss_rate", 5), ("latency_ms", 100),
                                  ("jitter_ms", 20)):
            create_rule({"name": f"{metric} high", "metric": metric, "op": ">",
                         "threshold": threshold, "for_minutes": 3})


def measure(app, probes, now: datetime) -> tuple[float, float, dict, float, float]:
    from app.alerts import readings
    from app.alerts.evaluation import evaluate

    with app.app_context():
        cpu, wall = time.process_time(), time.perf_counter()
        report = evaluate(now)
        eval_cpu, eval_wall = time.process_time() - cpu, time.perf_counter() - wall
        cpu, wall = time.process_time(), time.perf_counter()
        latest = readings.latest_runs(probes, now)
        read_cpu, read_wall = time.process_time() - cpu, time.perf_counter() - wall
        assert sum(1 for r in latest.values() if r is not None) == len(probes)
    return eval_cpu, eval_wall, {"subjects": report.subjects,
                                 "transitions": report.transitions}, read_cpu, read_wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--probes-per-node", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from app import create_app
    from app.config import Config

    with throwaway_servers() as servers:
        migrate_and_create_admin(servers)
        app = create_app(Config(servers.env()))
        app.config["CELERY_BROKER_URL"] = None  # no worker: deliveries stay queued
        now = datetime.now(UTC)
        probes = seed(app, args.nodes, args.probes_per_node, int(now.timestamp() * 1000))
        create_rules(app)
        rows, steady = [], []
        for i in range(args.rounds):
            eval_cpu, eval_wall, report, read_cpu, read_wall = measure(app, probes, now)
            if i:
                steady.append((eval_cpu, read_cpu))
            rows.append([i + 1, f"{report['subjects']:,}", report["transitions"],
                         f"{eval_cpu:.2f} s", f"{eval_wall:.2f} s", f"{read_cpu:.3f} s",
                         f"{read_wall:.3f} s", f"{eval_cpu / read_cpu:.1f} ×"])
        print_table(["round", "subjects × rules", "transitions", "evaluate CPU",
                     "evaluate wall", "bare read CPU", "bare read wall", "evaluate / read"],
                    rows, title=f"{len(probes):,} probes × 3 rules")
        cpu = median([e for e, _ in steady]) if steady else float(rows[0][3].split()[0])
        print(f"\nsteady-state evaluation CPU {cpu:.2f} s a minute "
              f"(target ≤ {TARGET_CPU_S} s): {verdict(cpu <= TARGET_CPU_S)}")


if __name__ == "__main__":
    main()
