"""Flush (pending stream -> metrics rows) against a raw COPY of the same rows into the same
table, accept-to-row lag, and Redis bytes per live point (SPEC §9).

    .venv/bin/python bench/flush.py [--points 50000] [--rounds 3] [--lag-seconds 30]

Starts a throwaway PostgreSQL and Redis, migrates (flask CLI), then in-process (an app
context on those servers) creates a node with three probes and, each round: pushes
--points points into the pending stream through `app.ingest.heartbeats.ingest` (one call per
--ingest-batch heartbeats of 3 results, distinct timestamps 1 s apart), times
`app.history.flush.flush_pending()`, truncates, and times `COPY metrics FROM STDIN` of the
same rows in one transaction (psycopg2 copy_expert; the text is built before the clock
starts), plus the same COPY cut into 100-row transactions (the flush's transaction size).

Lag: heartbeats stamped "now" are ingested at --lag-rate a second for --lag-seconds while a
thread runs flush_pending every 10 s (the beat schedule; no early flushes, so this is the
worst case); lag = created_at - timestamp of each row.

Live cache: one series filled through app.ingest.store.write_points (ingest's writes) with
60, 120 and 200 points;
MEMORY USAGE (SAMPLES 0) / points and OBJECT ENCODING.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
import time
import uuid

from pulse_stack import (
    heartbeat,
    median,
    migrate_and_create_admin,
    print_table,
    throwaway_servers,
    verdict,
)

FLUSH_TARGET = 0.5
LAG_TARGET_S = 20.0
BYTES_TARGET = 80   # per point, with the run's spread and error (SPEC §9)
MEMBER_TARGET = 64  # every member, so sets stay listpack
COPY_COLUMNS = ("node_id, probe_id, timestamp, latency_ms, packet_loss_rate, jitter_ms, "
                "latency_min_ms, latency_median_ms, latency_p95_ms, latency_max_ms, sent, "
                "received, error_code, is_aggregated, created_at")


def make_app(servers):
    from app import create_app
    from app.config import Config

    return create_app(Config(servers.env()))


def create_node(app, name: str) -> tuple[uuid.UUID, list[str]]:
    from app.services.nodes import create_node as create
    from app.services.probes import create_probe

    with app.app_context():
        node, _token = create(name)
        probe_ids = [str(create_probe({"node_id": node.id, "type": "TCP",
                                       "target": "192.0.2.20", "port": port}).id)
                     for port in (7001, 7002, 7003)]
        return node.id, probe_ids


def raw_connection(app):
    from app.extensions import db

    with app.app_context():
        return db.engine.raw_connection()


def truncate(app) -> None:
    conn = raw_connection(app)
    with conn.cursor() as cur:
        cur.execute("TRUNCATE metrics")
    conn.commit()
    conn.close()


def count_rows(app) -> int:
    conn = raw_connection(app)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM metrics WHERE NOT is_aggregated")
        (rows,) = cur.fetchone()
    conn.close()
    return rows


def reset_redis(app) -> None:
    from app.extensions import get_redis

    with app.app_context():
        get_redis().client.flushdb()


def fill_pending(app, node_id, probe_ids, points: int, ingest_batch: int,
                 newest_ms: int) -> tuple[float, list[tuple]]:
    """Ingest heartbeats of 3 results; returns (seconds, the rows they stand for)."""
    from app.ingest.heartbeats import ingest

    beats = points // len(probe_ids)
    rows = []
    started = time.perf_counter()
    with app.test_request_context():
        for start in range(0, beats, ingest_batch):
            items = [heartbeat(str(node_id), probe_ids, newest_ms - i * 1000, i)
                     for i in range(start, min(beats, start + ingest_batch))]
            result = ingest(node_id, items)
            if result.accepted != len(items) * len(probe_ids):
                raise RuntimeError(f"ingest refused points: {result.outcomes[:3]}")
            for item in items:
                for r in item["results"]:
                    rows.append((str(node_id), r["probe_id"], item["timestamp"],
                                 r["latency_ms"], r["packet_loss_rate"], r["jitter_ms"],
                                 r["latency_min_ms"], r["latency_median_ms"],
                                 r["latency_p95_ms"], r["latency_max_ms"], r["sent"],
                                 r["received"], r["error"]))
    return time.perf_counter() - started, rows


def copy_text(rows: list[tuple]) -> str:
    """The same rows, every column the flush writes (the run's spread, counts, error)."""
    out = io.StringIO()
    for (node_id, probe_id, ts, latency, loss, jitter, low, mid, p95, high, sent,
         received, error) in rows:
        error = error or "\\N"
        out.write(f"{node_id}\t{probe_id}\t{ts}\t{latency:.2f}\t{loss:.4f}\t{jitter:.2f}"
                  f"\t{low:.2f}\t{mid:.2f}\t{p95:.2f}\t{high:.2f}\t{sent}\t{received}"
                  f"\t{error}\tf\tnow\n")
    return out.getvalue()


def timed_copy(app, text: str, per_transaction: int | None) -> float:
    """COPY the rows into metrics; all at once, or in transactions of per_transaction."""
    lines = text.splitlines(keepends=True)
    chunks = ([text] if per_transaction is None else
              ["".join(lines[i:i + per_transaction])
               for i in range(0, len(lines), per_transaction)])
    conn = raw_connection(app)
    started = time.perf_counter()
    with conn.cursor() as cur:
        for chunk in chunks:
            cur.copy_expert(f"COPY metrics ({COPY_COLUMNS}) FROM STDIN", io.StringIO(chunk))
            conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def round_span_ms(points: int) -> int:
    return (points // 3 + 60) * 1000


def one_round(app, node_id, probe_ids, args, round_no: int) -> dict:
    from app.history.flush import flush_pending

    truncate(app)
    reset_redis(app)
    # Each round its own timestamps (1 s apart, newest 2 minutes ago), within the retention.
    newest_ms = int(time.time() * 1000) - 120_000 - round_no * round_span_ms(args.points)
    ingest_s, rows = fill_pending(app, node_id, probe_ids, args.points, args.ingest_batch,
                                  newest_ms)
    with app.app_context():
        started = time.perf_counter()
        report = flush_pending(max_seconds=600)
        flush_s = time.perf_counter() - started
    stored = count_rows(app)
    if report.inserted != len(rows) or stored != len(rows):
        raise RuntimeError(f"flush stored {report.inserted} (table {stored}) of {len(rows)}")
    text = copy_text(rows)
    truncate(app)
    copy_s = timed_copy(app, text, None)
    truncate(app)
    copy100_s = timed_copy(app, text, 100)
    result = {"rows": len(rows), "ingest_s": round(ingest_s, 3), "flush_s": round(flush_s, 3),
              "copy_s": round(copy_s, 3), "copy100_s": round(copy100_s, 3),
              "flush_rows_s": len(rows) / flush_s, "copy_rows_s": len(rows) / copy_s,
              "copy100_rows_s": len(rows) / copy100_s}
    print(f"  round {round_no + 1}: ingest {ingest_s:5.1f} s ({len(rows) / ingest_s:7,.0f} "
          f"points/s)  flush {flush_s:5.2f} s ({result['flush_rows_s']:7,.0f} rows/s)  "
          f"COPY {copy_s:5.2f} s ({result['copy_rows_s']:7,.0f} rows/s)  COPY/100 "
          f"{copy100_s:5.2f} s ({result['copy100_rows_s']:7,.0f} rows/s)", flush=True)
    return result


def measure_lag(app, node_id, probe_ids, seconds: float, rate: int) -> dict:
    """Ingest heartbeats stamped now while a thread flushes every 10 s; row lag stats."""
    from app.history.flush import flush_pending
    from app.ingest.heartbeats import ingest

    truncate(app)
    reset_redis(app)
    stop = threading.Event()
    flushes: list[float] = []

    def flusher() -> None:
        with app.app_context():
            while not stop.wait(10.0):
                started = time.perf_counter()
                flush_pending(max_seconds=60)
                flushes.append(time.perf_counter() - started)

    thread = threading.Thread(target=flusher, name="bench-flusher", daemon=True)
    thread.start()
    sent = 0
    started = time.monotonic()
    with app.test_request_context():
        while time.monotonic() - started < seconds and sent < rate * seconds * 2:
            target = started + sent / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now_ms = int(time.time() * 1000)
            ingest(node_id, [heartbeat(str(node_id), probe_ids, now_ms, sent)])
            sent += 1
    stop.set()
    thread.join(70)
    with app.app_context():
        flush_pending(max_seconds=60)  # what the next scheduled run would take
    conn = raw_connection(app)
    with conn.cursor() as cur:
        cur.execute("SELECT extract(epoch FROM created_at - timestamp) FROM metrics "
                    "WHERE NOT is_aggregated ORDER BY 1")
        lags = [float(r[0]) for r in cur.fetchall()]
    conn.close()
    return {"heartbeats": sent, "rows": len(lags), "flushes": len(flushes),
            "flush_s_max": max(flushes, default=0.0),
            "lag_p50_s": lags[len(lags) // 2] if lags else float("nan"),
            "lag_p99_s": lags[int(len(lags) * 0.99)] if lags else float("nan"),
            "lag_max_s": lags[-1] if lags else float("nan")}


def live_memory(app, sizes: list[int]) -> list[dict]:
    from app.extensions import get_redis
    from app.history import live_cache
    from app.ingest.store import write_points
    from app.redis_keys import live_key

    results = []
    with app.app_context():
        handle = get_redis()
        client = handle.client
        node = str(uuid.uuid4())
        for n in sizes:
            series = str(uuid.uuid4())
            now_ms = int(time.time() * 1000)
            step_ms = 3_600_000 // n
            points = []
            for i in range(n):  # a run as a Beacon reports it: spread, counts, error
                latency = round(3 + (i * 37 % 2000) / 10, 2)
                loss = float(i % 4 * 10)
                points.append(live_cache.Point(
                    series, now_ms - 1000 - i * step_ms, latency, loss,
                    round((i * 13 % 300) / 100, 2), round(latency * 0.9, 2), latency,
                    round(latency * 1.2, 2), round(latency * 1.3, 2), 10,
                    10 - int(loss / 10), "ERR_CONNECTION_TIMEOUT" if loss else None))
            write_points(client, handle.prefix, node, points, now_ms)
            key = live_key(handle.prefix, node, series)
            stored = client.zcard(key)
            usage = client.memory_usage(key, samples=0)
            encoding = client.object("encoding", key).decode()
            members = [len(live_cache.encode_member(p)) for p in points]
            member_len = sum(members) / n
            results.append({"points": n, "stored": stored, "memory_usage": usage,
                            "bytes_per_point": usage / stored, "encoding": encoding,
                            "member_bytes": member_len, "member_max": max(members)})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=50_000, help="rows per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ingest-batch", type=int, default=1,
                        help="heartbeats per ingest() call (1 = one stream entry each, as "
                             "POST /heartbeat makes)")
    parser.add_argument("--lag-seconds", type=float, default=30.0, help="0 skips the lag run")
    parser.add_argument("--lag-rate", type=int, default=100, help="heartbeats/s in the lag run")
    parser.add_argument("--live-sizes", default="60,120,200")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if args.rounds * round_span_ms(args.points) > 6 * 86_400_000:
        parser.error("--rounds × --points/3 seconds must fit in 6 days (the raw retention is 7)")
    started = time.monotonic()
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; {args.points:,} "
          f"points a round, {args.ingest_batch} heartbeat(s) per ingest() call", flush=True)

    with throwaway_servers() as servers:
        migrate_and_create_admin(servers)
        app = make_app(servers)
        node_id, probe_ids = create_node(app, "bench-flush")
        rounds = [one_round(app, node_id, probe_ids, args, r) for r in range(args.rounds)]
        lag = (measure_lag(app, node_id, probe_ids, args.lag_seconds, args.lag_rate)
               if args.lag_seconds > 0 else None)
        memory = live_memory(app, [int(n) for n in args.live_sizes.split(",")])
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
    report(args, rounds, lag, memory)
    print(f"\ntotal {time.monotonic() - started:.0f} s", flush=True)
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"rounds": rounds, "lag": lag, "memory": memory}, f, indent=2)
    return 0


def report(args, rounds, lag, memory) -> None:
    flush_rate = median([r["flush_rows_s"] for r in rounds])
    copy_rate = median([r["copy_rows_s"] for r in rounds])
    copy100_rate = median([r["copy100_rows_s"] for r in rounds])
    ingest_rate = median([r["rows"] / r["ingest_s"] for r in rounds])
    # Each round's own ratio (the COPY right after its flush), then the median of those.
    ratio = median([r["copy_s"] / r["flush_s"] for r in rounds])
    copy100_ratio = median([r["copy_s"] / r["copy100_s"] for r in rounds])
    print_table(["path", "rows/s", "× COPY", "target"], [
        ["raw COPY, one transaction (baseline)", f"{copy_rate:,.0f}", "1.00", ""],
        ["raw COPY, 100-row transactions", f"{copy100_rate:,.0f}", f"{copy100_ratio:.2f}",
         "(the flush's transaction size)"],
        ["flush_pending()", f"{flush_rate:,.0f}", f"{ratio:.2f}",
         f"≥ {FLUSH_TARGET}: {verdict(ratio >= FLUSH_TARGET)}"],
        ["(ingest() into Redis, for scale)", f"{ingest_rate:,.0f}", "", "points/s"],
    ], f"Flush vs raw COPY — {rounds[0]['rows']:,} rows; rows/s: medians of {len(rounds)} "
       f"rounds; × COPY: median of the rounds' own ratios")
    if lag:
        print_table(["heartbeats", "rows", "periodic flushes", "slowest flush s", "lag p50 s",
                     "lag p99 s", "lag max s", "target"],
                    [[lag["heartbeats"], lag["rows"], lag["flushes"],
                      f"{lag['flush_s_max']:.2f}", f"{lag['lag_p50_s']:.1f}",
                      f"{lag['lag_p99_s']:.1f}", f"{lag['lag_max_s']:.1f}",
                      f"≤ {LAG_TARGET_S:g} s: {verdict(lag['lag_max_s'] <= LAG_TARGET_S)}"]],
                    f"Accept-to-row lag — {args.lag_rate} heartbeats/s × 3 points for "
                    f"{args.lag_seconds:g} s, flush every 10 s")
    rows = []
    for m in memory:
        ok = (m["bytes_per_point"] <= BYTES_TARGET and m["member_max"] <= MEMBER_TARGET
              and m["encoding"] == "listpack")
        target = (f"≤ {BYTES_TARGET} B a point, members ≤ {MEMBER_TARGET} B (max "
                  f"{m['member_max']}), listpack: {verdict(ok)}" if m["points"] <= 120
                  else "(more than a live hour holds at 1/30 s)")
        rows.append([m["points"], m["memory_usage"], f"{m['bytes_per_point']:.1f}",
                     f"{m['member_bytes']:.1f}", m["encoding"], target])
    print_table(["points in the set", "MEMORY USAGE B", "B/point", "member B", "encoding",
                 "target"], rows, "Redis live cache: one series (sorted set)")


if __name__ == "__main__":
    sys.exit(main())
