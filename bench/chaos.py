"""Chaos run: simulated Beacons through gunicorn + 2 Celery workers + beat on real Redis
(AOF on) and PostgreSQL while a schedule injects faults; then what was answered 200 is
checked against PostgreSQL (issue 14).

    .venv/bin/python bench/chaos.py                       # 200 Beacons, 10 minutes
    .venv/bin/python bench/chaos.py --short               # ~2 minutes, 40 Beacons
    .venv/bin/python bench/chaos.py --appendfsync always  # a Redis crash loses nothing
    .venv/bin/python bench/chaos.py --pg-outages 2        # memory across two outages

Each Beacon is a thread posting real heartbeats (3 probes) every --interval seconds; a
heartbeat not answered 200 is spooled and re-sent through the batch endpoint once Pulse
answers again, as the agent does. Faults, once each, spread over the run after a
warm-up: SIGKILL of a Celery worker while it flushes, SIGKILL of a gunicorn worker, a
graceful Redis restart, a Redis crash (SIGKILL), PostgreSQL stopped (60 s; 15 s short),
beat restarted. At the end: every point answered 200 is in PostgreSQL exactly once (a
Redis crash may lose what it acknowledged in its last second with appendfsync everysec:
counted), every aggregated minute equals a recomputation from its raw rows, no 5xx but
503 during declared outages, process memory after warm-up vs at the end, and the RSS of
every process every --memory-interval seconds (with each one's trend over the second half
of the run: warm-up or growth).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.chaos_stack import MemorySampler, Stack, rss_mb  # noqa: E402
from bench.pulse_stack import (  # noqa: E402
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    SECRET_KEY,
    create_nodes_via_api,
    heartbeat,
    print_table,
)

SPOOL_MAX = 5000
OUTAGE_GRACE_SECONDS = 10.0


@dataclass
class Ledger:
    """What the Beacons saw, shared by their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    accepted: dict[tuple[str, int], float] = field(default_factory=dict)  # point -> when
    rejected: int = 0
    errors: list[tuple[float, int]] = field(default_factory=list)  # (when, status) 5xx
    failures: int = 0  # connection errors and timeouts

    def accept(self, points: list[tuple[str, int]]) -> None:
        now = time.time()
        with self.lock:
            for point in points:
                self.accepted.setdefault(point, now)


class Beacon(threading.Thread):
    def __init__(self, base: str, node, ledger: Ledger, interval: float, stop: threading.Event,
                 index: int) -> None:
        super().__init__(name=f"beacon-{index}", daemon=True)
        self.base, self.node, self.ledger, self.interval = base, node, ledger, interval
        self.stop_event, self.index = stop, index
        self.spool: list[dict] = []
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {node.token}"

    def run(self) -> None:
        time.sleep(self.index % 50 * self.interval / 50)  # spread the first reports
        seed = 0
        while not self.stop_event.is_set():
            seed += 1
            body = heartbeat(self.node.node_id, self.node.probe_ids, int(time.time() * 1000),
                             seed)
            with self.ledger.lock:
                self.ledger.sent += len(self.node.probe_ids)
            if self._post("/api/v1/beacon/heartbeat", body) is None:
                self.spool = (self.spool + [body])[-SPOOL_MAX:]
            else:
                self.ledger.accept(_points(body))
                self.deliver_spool()
            self.stop_event.wait(self.interval)

    def deliver_spool(self) -> bool:
        while self.spool:
            chunk = self.spool[:200]
            answer = self._post("/api/v1/beacon/heartbeats", {"heartbeats": chunk})
            if answer is None:
                return False
            rejected = {r["index"] for r in answer.get("rejected", [])}
            with self.ledger.lock:
                self.ledger.rejected += sum(len(chunk[i]["results"]) for i in rejected)
            self.ledger.accept([p for i, b in enumerate(chunk) if i not in rejected
                                for p in _points(b)])
            self.spool = self.spool[len(chunk):]
        return True

    def _post(self, path: str, body: dict) -> dict | None:
        try:
            response = self.session.post(self.base + path, json=body, timeout=10)
        except requests.RequestException:
            with self.ledger.lock:
                self.ledger.failures += 1
            return None
        if response.status_code >= 500:
            with self.ledger.lock:
                self.ledger.errors.append((time.time(), response.status_code))
        return response.json() if response.status_code == 200 else None


def _points(body: dict) -> list[tuple[str, int]]:
    from datetime import datetime

    ts = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    ts_ms = int(ts.timestamp() * 1000)
    return [(r["probe_id"], ts_ms) for r in body["results"]]


class Faults:
    """The fault schedule; each fault records its outage window."""

    def __init__(self, stack: Stack, pg_outage: float) -> None:
        self.stack, self.pg_outage = stack, pg_outage
        self.windows: list[tuple[str, float, float]] = []
        self.redis_crash_at: float | None = None

    def _window(self, name: str, started: float) -> None:
        self.windows.append((name, started, time.time() + OUTAGE_GRACE_SECONDS))
        print(f"  fault done: {name} ({time.time() - started:.1f} s)", flush=True)

    def kill_worker_mid_flush(self) -> None:
        started = time.time()
        victim = self.stack.workers[0]
        deadline = time.monotonic() + 30
        while victim.flushes_in_flight() <= 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        mid_flush = victim.flushes_in_flight() > 0
        victim.kill()
        time.sleep(2)
        victim.start()
        self._window(f"SIGKILL celery worker ({'mid-flush' if mid_flush else 'idle'})",
                     started)

    def kill_gunicorn_worker(self) -> None:
        import os
        import signal

        started = time.time()
        pids = self.stack.gunicorn_worker_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
        time.sleep(3)
        self._window("SIGKILL gunicorn worker", started)

    def restart_redis(self) -> None:
        started = time.time()
        self.stack.redis.restart()
        self._window("Redis graceful restart", started)

    def crash_redis(self) -> None:
        started = time.time()
        self.redis_crash_at = started
        self.stack.redis.crash()
        time.sleep(2)
        self.stack.redis.start()
        self._window("Redis SIGKILL + start", started)

    def stop_postgresql(self) -> None:
        started = time.time()
        self.stack.pg.stop("fast")
        time.sleep(self.pg_outage)
        self.stack.pg.start()
        self._window(f"PostgreSQL stopped {self.pg_outage:.0f} s", started)

    def restart_beat(self) -> None:
        started = time.time()
        self.stack.beat.stop()
        self.stack.beat.start()
        self._window("beat restarted", started)

    def schedule(self, pg_outages: int = 1):
        """Every fault once; PostgreSQL's outage `pg_outages` times (the later ones last:
        does a second outage raise the workers' memory again, or was the first a
        high-water mark?)."""
        return [self.kill_worker_mid_flush, self.kill_gunicorn_worker, self.restart_redis,
                self.crash_redis, self.stop_postgresql, self.restart_beat,
                *[self.stop_postgresql] * (pg_outages - 1)]


def memory(stack: Stack) -> dict[str, float]:
    return {"gunicorn": rss_mb([stack.web.proc.pid, *stack.gunicorn_worker_pids()]),
            "celery workers": rss_mb([p for w in stack.workers for p in w.pids()]),
            "beat": rss_mb(stack.beat.pids())}


def run(beacons: int, duration: float, interval: float, pg_outage: float,
        appendfsync: str, workdir: Path, memory_interval: float = 30.0,
        pg_outages: int = 1) -> dict:
    stack = Stack(workdir, appendfsync)
    try:
        stack.start(SECRET_KEY)
        import subprocess

        from bench.pulse_stack import VENV_BIN

        subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", "users", "create",
                        ADMIN_EMAIL, "--role", "admin", "--password-stdin"],
                       input=ADMIN_PASSWORD + "\n", text=True, cwd=ROOT, env=stack.env,
                       check=True, capture_output=True, timeout=120)
        base = stack.web.base_url
        nodes = create_nodes_via_api(base, "chaos", beacons, probes=3)
        ledger, stop = Ledger(), threading.Event()
        threads = [Beacon(base, node, ledger, interval, stop, i)
                   for i, node in enumerate(nodes)]
        started = time.time()
        sampler = MemorySampler(stack, memory_interval, started)
        sampler.start()
        for thread in threads:
            thread.start()
        faults = Faults(stack, pg_outage)
        warmup = min(60.0, duration * 0.15)
        time.sleep(warmup)
        memory_start = memory(stack)
        steps = faults.schedule(pg_outages)
        gap = (duration - warmup - pg_outages * pg_outage - 30) / len(steps)
        for step in steps:
            step_started = time.time()
            print(f"t+{step_started - started:5.0f} s: {step.__name__}", flush=True)
            step()
            time.sleep(max(1.0, gap - (time.time() - step_started)))
        time.sleep(max(0.0, started + duration - time.time()))
        memory_end = memory(stack)
        sampler.stop_event.set()
        sampler.join(5)
        stop.set()
        for thread in threads:
            thread.join(15)
        _final_delivery(threads)
        checks = _settle_and_check(stack, ledger)
        return {"beacons": beacons, "duration_s": round(time.time() - started),
                "appendfsync": appendfsync, "sent": ledger.sent,
                "accepted": len(ledger.accepted), "rejected": ledger.rejected,
                "connection_failures": ledger.failures,
                "5xx": _classify_errors(ledger.errors, faults.windows),
                "redis_crash_at": faults.redis_crash_at, "faults": faults.windows,
                "memory_mb": {k: (round(memory_start[k], 1), round(memory_end[k], 1))
                              for k in memory_start},
                "memory_samples": sampler.samples,
                "memory_flatness": sampler.flatness(after_s=duration / 2),
                **_loss(ledger, checks, faults.redis_crash_at), **checks["aggregates"]}
    finally:
        stack.stop()


def _final_delivery(threads: list[Beacon], timeout: float = 90.0) -> None:
    """Beacons deliver what they spooled once Pulse answers (bounded)."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        while thread.spool and time.monotonic() < deadline:
            if not thread.deliver_spool():
                time.sleep(1)


def _settle_and_check(stack: Stack, ledger: Ledger) -> dict:
    """Wait for the flush to drain, aggregate the last minutes, read PostgreSQL."""
    from app import create_app
    from app.config import Config

    env = {k: v for k, v in stack.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    app = create_app(Config(env))
    with app.app_context():
        from sqlalchemy import text

        from app.extensions import db, get_redis
        from app.history.aggregation import aggregate_pending_minutes
        from app.history.flush import flush_pending
        from app.redis_keys import pending_points_key

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if int(get_redis().client.get(pending_points_key(get_redis().prefix)) or 0) <= 0:
                break
            time.sleep(2)
        flush_pending()  # whatever a dead consumer left (claimed after the idle time)
        time.sleep(max(0.0, 61 - time.time() % 60))  # the last minute closes
        flush_pending()
        aggregate_pending_minutes()
        rows = db.session.execute(text(
            "SELECT probe_id::text, (extract(epoch FROM timestamp) * 1000)::bigint, count(*) "
            "FROM metrics WHERE NOT is_aggregated GROUP BY 1, 2")).all()
        mismatched = db.session.execute(text("""
            SELECT count(*) FROM metrics a JOIN (
              SELECT probe_id, date_trunc('minute', timestamp) AS minute, count(*) AS n,
                     avg(latency_ms) AS latency
              FROM metrics WHERE NOT is_aggregated GROUP BY 1, 2) r
              ON r.probe_id = a.probe_id AND r.minute = a.timestamp
            WHERE a.is_aggregated
              AND (a.sample_count <> r.n OR abs(a.latency_ms - r.latency) > 0.02)""")).scalar()
        aggregated = db.session.execute(text(
            "SELECT count(*) FROM metrics WHERE is_aggregated")).scalar()
        db.session.remove()
        db.engine.dispose()
    stored = {(probe, ts): n for probe, ts, n in rows}
    return {"stored": stored, "aggregates": {"aggregated_minutes": aggregated,
                                             "aggregate_mismatches": mismatched}}


def _loss(ledger: Ledger, checks: dict, crash_at: float | None) -> dict:
    stored = checks["stored"]
    lost = [p for p in ledger.accepted if p not in stored]
    in_crash_second = [p for p in lost if crash_at is not None
                       and crash_at - 1.5 <= ledger.accepted[p] <= crash_at]
    return {"stored": sum(1 for p in ledger.accepted if p in stored),
            "duplicates": sum(n - 1 for n in stored.values() if n > 1),
            "lost": len(lost), "lost_in_redis_crash_second": len(in_crash_second)}


def _classify_errors(errors: list[tuple[float, int]], windows) -> dict:
    inside = lambda when: any(a <= when <= b for _, a, b in windows)  # noqa: E731
    return {"503_in_outages": sum(1 for w, s in errors if s == 503 and inside(w)),
            "503_outside_outages": sum(1 for w, s in errors if s == 503 and not inside(w)),
            "other_5xx": sum(1 for _, s in errors if s != 503)}


def print_report(result: dict) -> None:
    hidden = ("faults", "memory_samples", "memory_flatness")
    rows = [(k, json.dumps(v) if isinstance(v, dict | list) else v)
            for k, v in result.items() if k not in hidden]
    print_table(["figure", "value"], rows, title="Chaos run")
    print_table(["fault", "started (epoch s)", "window ends"],
                [(n, f"{a:.0f}", f"{b:.0f}") for n, a, b in result["faults"]])
    samples = result["memory_samples"]
    labels = sorted({label for _, row in samples for label in row})
    print_table(["t s", *labels],
                [[f"{t:.0f}", *(f"{row[k][1]:.1f} ({row[k][0]})" if k in row else "–"
                                for k in labels)] for t, row in samples],
                title="RSS MB (pid) of every process, sampled through the run")
    print_table(["process", "samples", "first", "last", "min", "max", "slope MB/min"],
                [[k, v["samples"], *(f"{v[x]:.1f}" for x in ("first", "last", "min", "max")),
                  f"{v['slope_mb_per_min']:+.2f}"] for k, v in result["memory_flatness"].items()],
                title="Second half of the run (after warm-up), same pid: flat or growing?")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beacons", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between reports")
    parser.add_argument("--pg-outage", type=float, default=60.0)
    parser.add_argument("--pg-outages", type=int, default=1,
                        help="how many times PostgreSQL is stopped (memory: step or leak?)")
    parser.add_argument("--appendfsync", choices=("everysec", "always"), default="everysec")
    parser.add_argument("--short", action="store_true", help="40 Beacons, ~2 minutes")
    parser.add_argument("--memory-interval", type=float, default=30.0,
                        help="seconds between RSS samples of every process")
    args = parser.parse_args()
    if args.short:
        args.beacons, args.minutes, args.interval, args.pg_outage = 40, 2.0, 5.0, 15.0
    with tempfile.TemporaryDirectory(prefix="pulse-chaos-") as tmp:
        result = run(args.beacons, args.minutes * 60, args.interval, args.pg_outage,
                     args.appendfsync, Path(tmp), args.memory_interval, args.pg_outages)
    print_report(result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("faults", "memory_samples")}),
          flush=True)
    ok = (result["duplicates"] == 0 and result["aggregate_mismatches"] == 0
          and result["5xx"]["other_5xx"] == 0
          and result["lost"] == result["lost_in_redis_crash_second"]
          and (args.appendfsync != "always" or result["lost"] == 0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
