"""History at scale (SPEC §9, §12): reads and retention on a large partitioned database.

Seeds, straight in PostgreSQL with generate_series (not through the API):
  * NODES × PROBES_PER_NODE probes (default 1,000 × 10 = 10,000) with a raw run every
    minute for RAW_DAYS days (default 3.5: 50.4 M rows), in the daily partitions;
  * minute aggregates of every probe for the newest MINUTE_DAYS days (default 1: 14.4 M
    rows, written minute by minute for all probes as the aggregation does, so a node's
    rows lie among everyone's), hourly rollups of every probe over 30 days (7.2 M rows,
    hour by hour for all probes as the roll-up writes them) up to the last full hour,
    the packed blocks of every finished hour of minutes and every day of rollups (written
    by the roll-up's own code), and two years of rollups for the measured node's probes.
A kept cluster (--keep) is topped up to now on every run (`top_up`: only what is
missing, e.g. the hours since its last run or the day the retention measure dropped), so
the reads always see a fleet that has been reporting until now.
Then measures the server time of the real requests (Flask's test client in one process,
signed in as a bench operator; the median of ROUNDS calls) against the bare `/healthz` in
the same run: a node page's chart data (`/nodes/<id>/data`, 10 probes × 24 h at 1m; × 30 d
at 1h from the rollups), the SLA report of a node over 30 days and a probe's two-year 1h
chart through the API (`/api/v1/reports/sla`, `/api/v1/nodes/<id>/metrics`), and
retention: dropping one day's raw partition against a row-by-row DELETE of the same day
from an unpartitioned copy of it. Prints the database size per day of raw data.

  .venv/bin/python bench/history.py                  # the full seed (slow on 2 cores)
  .venv/bin/python bench/history.py --keep .tmp/histdb  # keep the seeded cluster, reuse it
  .venv/bin/python bench/history.py --nodes 100 --raw-days 1  # a quick, smaller run
Loopback only; not part of `make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pulse_stack import ROOT, median, print_table, verdict  # noqa: E402

TARGET_MS = 150.0
RETENTION_TARGET_S = 1.0


class Cluster:
    """A PostgreSQL cluster in `data_dir`, created once and kept when asked to."""

    def __init__(self, data_dir: Path | None) -> None:
        from tests.support.servers import _find_pg_bin, free_port

        self.initdb, self.pg_ctl = _find_pg_bin("initdb"), _find_pg_bin("pg_ctl")
        self.kept = data_dir is not None
        self.root = Path(data_dir or tempfile.mkdtemp(prefix="pulse-hist-")).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.user = "nobody" if os.geteuid() == 0 else None
        if self.user:
            os.chmod(self.root, 0o777)
        self.fresh = not (self.root / "data" / "PG_VERSION").exists()
        if self.fresh:
            self._run([self.initdb, "-D", str(self.root / "data"), "-U", "postgres", "-A",
                       "trust", "-E", "UTF8", "--no-locale"])

    def _run(self, cmd: list[str]) -> None:
        kwargs = {}
        if self.user:
            entry = pwd.getpwnam(self.user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid}
        subprocess.run(cmd, check=True, capture_output=True, cwd=str(self.root), timeout=600,
                       **kwargs)

    def start(self) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.root} -c shared_buffers=1GB "
                "-c work_mem=64MB -c maintenance_work_mem=512MB -c max_wal_size=8GB "
                "-c synchronous_commit=off -c fsync=off -c full_page_writes=off")
        self._run([self.pg_ctl, "-D", str(self.root / "data"), "-o", opts, "-l",
                   str(self.root / "log"), "-w", "-t", "120", "start"])

    def stop(self) -> None:
        self._run([self.pg_ctl, "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"])
        if not self.kept:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def make_app(url: str):
    os.environ.pop("REDIS_URL", None)  # the live hour is not what is measured here
    from app import create_app
    from app.config import Config

    return create_app(Config({"DATABASE_URL": url, "SECRET_KEY": "bench-" + "x" * 40,
                              "PULSE_RAW_RETENTION_DAYS": "7"}))


def seed(app, args) -> dict:
    """Nodes, probes, two years of the measured node's rollups, then top_up."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app.extensions import db
    from app.history.retention import maintain_partitions

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    timings = {}
    with app.app_context():
        upgrade()
        maintain_partitions()
        started = time.monotonic()
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO nodes (id, name, labels, token_hash, metadata, created_at, "
                "updated_at) SELECT gen_random_uuid(), 'bench-' || n, '{}', "
                "md5(n::text) || md5('t' || n::text), '{}', now(), now() "
                "FROM generate_series(1, :nodes) n"), {"nodes": args.nodes})
            conn.execute(text(
                "INSERT INTO probes (id, node_id, name, type, target, port, interval_seconds, "
                "count, timeout_seconds, enabled, source, created_at, updated_at) "
                "SELECT gen_random_uuid(), n.id, NULL, 'TCP', '192.0.2.' || (p % 250 + 1), "
                "1000 + p, 60, 10, 5, true, 'api', now(), now() FROM nodes n "
                "CROSS JOIN generate_series(1, :per_node) p"), {"per_node": args.probes})
        node = db.session.execute(text(
            "SELECT id FROM nodes ORDER BY name LIMIT 1")).scalar()
        with db.engine.begin() as conn:
            # two years for the measured node's probes (its two-year chart); the newest
            # 30 days of every probe come with top_up
            conn.execute(text(ROLLUP_SQL), {"start": now - timedelta(days=730),
                                            "until": now - timedelta(days=30), "node": node})
        db.session.remove()
    top_up(app, args)
    with app.app_context():
        timings["seed_seconds"] = time.monotonic() - started
        db.session.remove()
    return timings


RAW_SQL = """
INSERT INTO metrics (node_id, probe_id, timestamp, latency_ms, packet_loss_rate, jitter_ms,
                     latency_min_ms, latency_median_ms, latency_p95_ms, latency_max_ms,
                     sent, received, is_aggregated, created_at)
SELECT p.node_id, p.id, t + (p.port % 60) * interval '1 second',
       v.lat, v.loss, 0.5 + v.k % 7 / 10.0, v.lat * 0.9, v.lat, v.lat * 1.2, v.lat * 1.3,
       10, 10 - (v.loss / 10)::int, false, now()
FROM probes p
CROSS JOIN generate_series(:start, :until - interval '1 minute', interval '1 minute') t
CROSS JOIN LATERAL (SELECT (extract(epoch FROM t)::bigint / 60 + p.port * 13) AS k) kk
CROSS JOIN LATERAL (SELECT kk.k, 5 + kk.k % 400 / 10.0 AS lat,
                           CASE WHEN kk.k % 97 = 0 THEN 100 ELSE kk.k % 3 * 10 END AS loss) v
ON CONFLICT DO NOTHING
"""
ALL_MINUTES_SQL = """
INSERT INTO metrics (node_id, probe_id, timestamp, latency_ms, packet_loss_rate, jitter_ms,
                     latency_min_ms, latency_median_ms, latency_p95_ms, latency_max_ms,
                     jitter_max_ms, packet_loss_max, sent, received, sample_count,
                     is_aggregated, created_at)
SELECT p.node_id, p.id, t, v.lat, v.loss, 0.5 + v.k % 7 / 10.0, v.lat * 0.9, v.lat,
       v.lat * 1.2, v.lat * 1.3, 0.9 + v.k % 5 / 10.0, v.loss, 10, 10 - (v.loss / 10)::int, 1,
       true, now()
FROM generate_series(:start, :until - interval '1 minute', interval '1 minute') t
CROSS JOIN probes p
CROSS JOIN LATERAL (SELECT (extract(epoch FROM t)::bigint / 60 + p.port * 13) AS k) kk
CROSS JOIN LATERAL (SELECT kk.k, 5 + kk.k % 400 / 10.0 AS lat,
                           CASE WHEN kk.k % 97 = 0 THEN 100 ELSE kk.k % 3 * 10 END AS loss) v
ORDER BY t, p.node_id, p.id
ON CONFLICT DO NOTHING
"""
ROLLUP_SQL = """
INSERT INTO metric_rollups_hourly (node_id, probe_id, hour, latency_ms, latency_min_ms,
    latency_max_ms, latency_median_ms, latency_p95_ms, packet_loss_rate, packet_loss_max,
    jitter_ms, jitter_max_ms, sample_count, latency_sample_count, runs_available, created_at)
SELECT p.node_id, p.id, h, 20 + p.port % 10, 15, 40, 20, 26, 1.5, 20, 0.7, 2, 60, 59, 59, now()
FROM probes p
CROSS JOIN generate_series(date_trunc('hour', CAST(:start AS timestamptz)),
                           CAST(:until AS timestamptz) - interval '1 hour', interval '1 hour') h
WHERE CAST(:node AS uuid) IS NULL OR p.node_id = CAST(:node AS uuid)
ORDER BY h, p.node_id, p.id
ON CONFLICT DO NOTHING
"""


def timed(call, rounds: int) -> float:
    """Median milliseconds of `call()` over `rounds` calls (after one warm-up)."""
    call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return median(samples)


def backend_cpu_seconds(app) -> float:
    """CPU seconds used so far by the cluster's client backends (this process's
    connections: the cluster is the benchmark's own), read from /proc."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        pids = db.session.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'")
        ).scalars().all()
        db.session.remove()
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_per_call(app, call, rounds: int) -> float:
    """Milliseconds of CPU per call, Pulse's process and PostgreSQL's backends together:
    what the request costs the machine, steadier than its wall time when other work
    shares the cores (parallel query workers, if any, are not counted)."""
    own, backends = time.process_time(), backend_cpu_seconds(app)
    for _ in range(rounds):
        call()
    used = (time.process_time() - own) + (backend_cpu_seconds(app) - backends)
    return used * 1000 / rounds


BENCH_EMAIL, BENCH_PASSWORD = "history-bench@example.test", "history-bench-password"


def clients(app):
    """(a test client signed in to the dashboard, an API bearer header) of a bench
    operator, created on first use (the kept cluster keeps it)."""
    import re

    from sqlalchemy import select

    from app.extensions import db
    from app.models import User
    from app.services.auth import create_user, issue_access_token

    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == BENCH_EMAIL))
        user = user or create_user(BENCH_EMAIL, BENCH_PASSWORD, "operator")
        token, _ = issue_access_token(user)
        db.session.remove()
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"email": BENCH_EMAIL, "password": BENCH_PASSWORD,
                                         "csrf_token": csrf})
    assert answer.status_code == 302, answer.status_code
    return client, {"Authorization": f"Bearer {token}"}


def measure(app, rounds: int) -> list[tuple]:
    """Server time of the real requests, in-process (Flask's test client: no socket)."""
    import gc

    from sqlalchemy import text

    from app.extensions import db

    client, bearer = clients(app)
    gc.collect()  # as gunicorn.conf.py's post_worker_init does in every production worker
    gc.freeze()
    now = datetime.now(UTC)
    with app.app_context():
        node = db.session.execute(text("SELECT id FROM nodes ORDER BY name LIMIT 1")).scalar()
        probe = db.session.execute(text(
            "SELECT id FROM probes WHERE node_id = :n ORDER BY id LIMIT 1"), {"n": node}).scalar()
        db.session.remove()

    def iso(moment: datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    def points_of(answer) -> int:
        body = answer.get_json()
        if "probes" in body:
            return sum(p["count"] for p in body["probes"])
        return len(body.get("points") or body.get("data") or [])

    reads = (  # the last item: whether SPEC §9 sets the 150 ms target for it
        ("node page data, 10 probes × 24 h at 1m", f"/nodes/{node}/data?range=24h", {}, True),
        ("node page data, 10 probes × 30 d at 1h (rollups)", f"/nodes/{node}/data?range=30d",
         {}, True),
        ("SLA report, one node × 30 d (API)", f"/api/v1/reports/sla?node_id={node}"
         f"&from={iso(now - timedelta(days=30))}&to={iso(now)}", bearer, False),
        ("a probe's two-year chart at 1h (API)", f"/api/v1/nodes/{node}/metrics?probe_id="
         f"{probe}&resolution=1h&from={iso(now - timedelta(days=730))}&to={iso(now)}",
         bearer, False),
    )
    bare = timed(lambda: client.get("/healthz"), rounds)
    rows = [("bare /healthz (baseline)", f"{bare:.2f}", "", "", "", "")]
    for label, path, headers, targeted in reads:
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, (path, answer.status_code, answer.get_data()[:300])

        def call(path=path, headers=headers):
            return client.get(path, headers=headers)

        ms = timed(call, rounds)
        cpu = cpu_per_call(app, call, rounds)
        rows.append((label, f"{ms:.1f}", f"{ms / bare:.0f}×", f"{cpu:.0f}",
                     points_of(answer), verdict(ms <= TARGET_MS) if targeted else "no target"))
    return rows


def retention(app, data_dir: Path) -> list[tuple]:
    """DROP of one raw day's partition vs DELETE of the same day from an unpartitioned copy.

    PostgreSQL removes a dropped table's files at commit, so the drop costs what the file
    system takes to free them. On a mount with online `discard` (this VM's) that is ~1 s a
    GiB whatever PostgreSQL does; the docs advise mounting without it (and `fstrim` from a
    timer). So, as root on such a mount, the partition is first moved (ALTER TABLE … SET
    TABLESPACE) to an ext4 file system mounted without discard (a loop file here) and
    dropped there; the file system's own unlink time is measured on both."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        name = conn.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'metrics_raw' "
            "AND c.relname <> 'metrics_raw_default' ORDER BY "
            "pg_total_relation_size(c.oid) DESC LIMIT 1")).scalar()
        rows = conn.execute(text(f"SELECT count(*) FROM {name}")).scalar()
        size = conn.execute(text(f"SELECT pg_total_relation_size('{name}')")).scalar()
        conn.execute(text("DROP TABLE IF EXISTS metrics_flat"))
        conn.execute(text(f"CREATE TABLE metrics_flat AS SELECT * FROM {name}"))
        for index, columns in (("flat_node_ts", "(node_id, timestamp DESC)"),
                               ("flat_probe_ts", "(probe_id, timestamp DESC)"),
                               ("flat_ts", "(timestamp)"),
                               ("flat_agg", "(is_aggregated, timestamp DESC)"),
                               ("flat_uq", "(probe_id, timestamp, is_aggregated)")):
            conn.execute(text(f"CREATE INDEX {index} ON metrics_flat {columns}"))
        conn.execute(text("ALTER TABLE metrics_flat ADD PRIMARY KEY (id)"))
        conn.commit()
        started = time.perf_counter()
        conn.execute(text("DELETE FROM metrics_flat"))
        conn.commit()
        delete_s = time.perf_counter() - started
        conn.execute(text("DROP TABLE metrics_flat"))
        conn.commit()
        host_unlink_s = unlink_seconds_per_gib(data_dir)
        moved = discards() and os.geteuid() == 0
        with (nodiscard_fs(data_dir, size) if moved else contextlib.nullcontext()) as fs:
            if fs is not None:
                _move_to_tablespace(conn, name, fs)
            started = time.perf_counter()  # as partitions.drop_expired does it
            conn.execute(text(f"ALTER TABLE metrics_raw DETACH PARTITION {name}"))
            conn.commit()
            detach_s = time.perf_counter() - started
            conn.execute(text(f"DROP TABLE {name}"))
            conn.commit()
            drop_s = time.perf_counter() - started - detach_s
            fs_unlink_s = unlink_seconds_per_gib(fs) if fs is not None else host_unlink_s
            if fs is not None:
                with conn.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT") as auto:
                    auto.execute(text("DROP TABLESPACE bench_nodiscard"))
    where = ("on ext4 without online discard (a loop file system; the partition moved "
             "there first)" if moved else
             f"on this file system ({'online discard' if discards() else 'no discard'})")
    gib = size / 2**30
    host_mount = "online discard" if discards() else "no discard"
    return [(f"DETACH PARTITION {name} ({rows:,} rows) — the only step that locks metrics",
             f"{detach_s:.3f}", verdict(detach_s <= RETENTION_TARGET_S)),
            (f"DROP TABLE of it ({size / 2**20:,.0f} MiB with indexes) {where}",
             f"{drop_s:.3f}", verdict(detach_s + drop_s <= RETENTION_TARGET_S)
             + f" (detach + drop {detach_s + drop_s:.3f} s)"),
            (f"file system baseline there: removing {gib:.1f} GiB of written files",
             f"{fs_unlink_s * gib:.3f}", f"{fs_unlink_s:.3f} s a GiB"),
            (f"file system baseline on this VM's mount ({host_mount}): removing {gib:.1f} "
             "GiB", f"{host_unlink_s * gib:.3f}",
             f"{host_unlink_s:.2f} s a GiB"),
            ("row-by-row DELETE of the same day, unpartitioned copy", f"{delete_s:.1f}",
             f"{delete_s / max(detach_s + drop_s, 1e-6):,.0f}× detach + drop")]


def _move_to_tablespace(conn, table: str, location: Path) -> None:
    """The partition and its indexes into a tablespace at `location`, written out."""
    from sqlalchemy import text

    (location / "pg").mkdir()
    shutil.chown(location / "pg", user="nobody")
    with conn.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as auto:
        # CREATE TABLESPACE runs outside a transaction
        auto.execute(text(f"CREATE TABLESPACE bench_nodiscard LOCATION '{location / 'pg'}'"))
    conn.execute(text(f"ALTER TABLE {table} SET TABLESPACE bench_nodiscard"))
    for index in conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = :t"),
                              {"t": table}).scalars().all():
        conn.execute(text(f'ALTER INDEX "{index}" SET TABLESPACE bench_nodiscard'))
    conn.commit()
    conn.execute(text("CHECKPOINT"))
    conn.commit()
    os.sync()


@contextlib.contextmanager
def nodiscard_fs(where: Path, size_bytes: int):
    """An ext4 file system mounted without discard, in a loop file under `where`."""
    image, mount = where / "nodiscard.img", where / "nodiscard"
    mount.mkdir(exist_ok=True)
    subprocess.run(["truncate", "-s", str(int(size_bytes * 1.3) + 2**31), str(image)],
                   check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop,nodiscard", str(image), str(mount)], check=True)
    try:
        os.chmod(mount, 0o777)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        image.unlink(missing_ok=True)


def discards() -> bool:
    """Whether the file system holding the working tree discards freed blocks at once
    (mount option `discard`): then removing a file costs time per byte it held."""
    best = ("", "")
    for line in Path("/proc/mounts").read_text().splitlines():
        _device, mount, _fs, options = line.split()[:4]
        if str(ROOT.resolve()).startswith(mount) and len(mount) > len(best[0]):
            best = (mount, options)
    return "discard" in best[1].split(",")


def unlink_seconds_per_gib(where: Path) -> float:
    """Seconds to remove 1 GiB of written (and synced) data on this file system."""
    where.mkdir(parents=True, exist_ok=True)
    path = where / "unlink-baseline.bin"
    chunk = b"\0" * 2**20
    with open(path, "wb") as out:
        for _ in range(1024):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    started = time.perf_counter()
    path.unlink()
    return time.perf_counter() - started


def _fill(conn, sql: str, start: datetime, until: datetime, step: timedelta,
          what: str, **params) -> bool:
    """Insert `sql`'s rows over [start, until) in `step` chunks; whether any ran."""
    from sqlalchemy import text

    began, chunk = time.monotonic(), start
    while chunk < until:
        end = min(chunk + step, until)
        conn.execute(text(sql), {"start": chunk, "until": end, **params})
        conn.commit()
        print(f"  {what} up to {end:%Y-%m-%d %H:%M} ({time.monotonic() - began:.0f} s)",
              flush=True)
        chunk = end
    return start < until


def _holes(conn, aggregated: bool, start: datetime, until: datetime, step: timedelta,
           unit: timedelta) -> list[tuple[datetime, datetime]]:
    """The parts of [start, until) with no metrics rows, looked at `step` by `step` (two
    index look-ups each): a dropped day, or the time since the seed was last topped up."""
    from sqlalchemy import text

    def floor(moment: datetime) -> datetime:
        return moment - (moment - datetime(2000, 1, 1, tzinfo=UTC)) % unit

    holes, chunk = [], start
    while chunk < until:
        end = min(chunk + step, until)
        first, last = conn.execute(text(
            "SELECT min(timestamp), max(timestamp) FROM metrics WHERE is_aggregated = :agg "
            "AND timestamp >= :start AND timestamp < :end"),
            {"agg": aggregated, "start": chunk, "end": end}).one()
        if first is None:
            holes.append((chunk, end))
        else:
            if floor(first) > chunk:
                holes.append((chunk, floor(first)))
            if floor(last) + unit < end:
                holes.append((floor(last) + unit, end))
        chunk = end
    return holes


def _pack(now: datetime, minute_days: float) -> bool:
    """Pack what the roll-up packs, with its own code (app.history.blocks): every finished
    hour of minutes over the newest MINUTE_DAYS and every day of rollups without its
    block."""
    from app.extensions import db
    from app.history import blocks

    began = time.monotonic()

    def progress(kind, done: int, total: int) -> None:
        if done % 40_000 < 2000 or done == total:
            print(f"  {kind.resolution} blocks {done:,} / {total:,} "
                  f"({time.monotonic() - began:.0f} s)", flush=True)

    until = now.replace(minute=0)
    packed = blocks.pack_missing(blocks.MINUTES, now - timedelta(days=minute_days), until,
                                 progress=progress)
    packed += blocks.pack_missing(blocks.HOURS, now - timedelta(days=800), until,
                                  progress=progress)
    db.session.remove()
    return packed > 0


def top_up(app, args) -> None:
    """Bring the seed up to now, fresh or kept: every probe's raw runs over the newest
    RAW_DAYS (up to an hour ago, as retention and the flush leave them), minute aggregates
    over the newest MINUTE_DAYS and hourly rollups over 30 days up to the last full
    hour. Only the missing parts are written: a kept cluster reused hours later (or
    after the retention measure dropped a day) is topped up, not seeded again."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app.extensions import db
    from app.history.retention import maintain_partitions

    minute = timedelta(minutes=1)
    with app.app_context():
        upgrade()  # a cluster kept from an older revision
        maintain_partitions()  # the daily raw partitions of the last days, if dropped
        db.session.remove()
        wrote_any = False
        for _pass in range(3):  # filling takes long: then fill the minutes it took too
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            wrote = False
            with db.engine.connect() as conn:
                raw_start = now - timedelta(hours=1) - timedelta(days=args.raw_days)
                for start, until in _holes(conn, False, raw_start, now - timedelta(hours=1),
                                           timedelta(days=1), minute):
                    wrote |= _fill(conn, RAW_SQL, start, until, timedelta(hours=6),
                                   "raw runs")
                minutes_start = now - timedelta(days=args.minute_days)
                for start, until in _holes(conn, True, minutes_start, now + minute,
                                           timedelta(days=1), minute):
                    wrote |= _fill(conn, ALL_MINUTES_SQL, start, until, timedelta(hours=3),
                                   "every probe's minutes")
                newest = conn.execute(text(
                    "SELECT max(hour) FROM metric_rollups_hourly WHERE hour >= :start"),
                    {"start": now - timedelta(days=30)}).scalar()
                first = newest + timedelta(hours=1) if newest else now - timedelta(days=30)
                wrote |= _fill(conn, ROLLUP_SQL, first, now.replace(minute=0),
                               timedelta(days=5), "rollups", node=None)
            wrote |= _pack(now, args.minute_days)
            wrote_any |= wrote
            if not wrote:
                break
        if wrote_any:
            with db.engine.connect() as conn:
                conn.execute(text("ANALYZE metrics"))
                conn.execute(text("ANALYZE metric_rollups_hourly"))
                conn.execute(text("ANALYZE metric_blocks"))
                conn.commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=10, help="per node")
    parser.add_argument("--raw-days", type=float, default=3.5)
    parser.add_argument("--minute-days", type=float, default=1.0,
                        help="days of minute aggregates for every probe (newest first)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the seeded cluster here")
    parser.add_argument("--no-retention", action="store_true",
                        help="skip the retention measure (it drops a day of the kept seed)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    cluster = Cluster(args.keep)
    cluster.start()
    try:
        app = make_app(cluster.url)
        if cluster.fresh:
            timings = seed(app, args)
            print(f"seeded in {timings['seed_seconds']:.0f} s")
        else:
            top_up(app, args)
        with app.app_context():
            from sqlalchemy import text

            from app.extensions import db

            raw_rows = db.session.execute(text(
                "SELECT reltuples::bigint FROM pg_class WHERE relname = 'metrics_raw'")
            ).scalar() or db.session.execute(text(
                "SELECT sum(reltuples)::bigint FROM pg_class c JOIN pg_inherits i ON "
                "i.inhrelid = c.oid JOIN pg_class p ON p.oid = i.inhparent "
                "WHERE p.relname = 'metrics_raw'")).scalar()
            db.session.remove()
        print(f"raw rows (estimate): {raw_rows:,}; run {uuid.uuid4().hex[:6]} "
              f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(f"load average {os.getloadavg()[0]:.1f} at the start of the reads")
        print_table(("read (median of rounds)", "ms", "× bare", "CPU ms", "points",
                     "≤ 150 ms"),
                    measure(app, args.rounds), title="Reads")
        if not args.no_retention:
            print_table(("retention: one day of raw history", "seconds", "≤ 1 s"),
                        retention(app, cluster.root), title="Retention")
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
