"""Partitions of `metrics` on PostgreSQL (SPEC §12).

`metrics` is partitioned by list on `is_aggregated` (`metrics_raw`, `metrics_agg`), each
of those by range on `timestamp`: raw rows in daily partitions (`metrics_raw_pYYYYMMDD`),
minute aggregates in monthly ones (`metrics_agg_pYYYYMM`), and a default partition under
each, so a row outside every partition (a far back-fill, beat down for days) lands
somewhere and never errors.

`maintain` creates the partitions from the retention's start to at least 3 days ahead. A
partition whose range the default already holds rows of cannot be created (PostgreSQL
refuses), so those rows move into it in the same transaction that creates it. Retention
detaches whole partitions and drops them (a day of raw history goes in one cheap `DETACH`
and `DROP TABLE`, whatever its row count) and deletes only the expired rows left in the
defaults. Every DDL statement
runs under a short `lock_timeout` and is retried, so it never queues behind a long
transaction while blocking the flush behind itself.

SQLite (embedded mode) keeps one table; there these functions do nothing or delete rows.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from app.extensions import db

log = logging.getLogger(__name__)
AHEAD_DAYS = 3
LOCK_TIMEOUT = "2s"
DDL_ATTEMPTS = 5
KINDS = {"raw": "false", "agg": "true"}


def is_partitioned() -> bool:
    return db.engine.dialect.name == "postgresql"


def raw_name(day: date) -> str:
    return f"metrics_raw_p{day:%Y%m%d}"


def agg_name(month: date) -> str:
    return f"metrics_agg_p{month:%Y%m}"


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def wanted(now: datetime, raw_days: int, agg_days: int) -> list[tuple[str, str, date, date]]:
    """(kind, name, first day, first day after) of every partition that should exist."""
    today = now.astimezone(UTC).date()
    result = []
    day = today - timedelta(days=raw_days)
    while day <= today + timedelta(days=AHEAD_DAYS):
        result.append(("raw", raw_name(day), day, day + timedelta(days=1)))
        day += timedelta(days=1)
    month = _month_start(today - timedelta(days=agg_days))
    while month <= _month_start(today + timedelta(days=AHEAD_DAYS)):
        result.append(("agg", agg_name(month), month, _next_month(month)))
        month = _next_month(month)
    return result


def existing(connection) -> set[str]:
    rows = connection.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname IN ('metrics_raw', "
        "'metrics_agg')"))
    return {row[0] for row in rows}


def detached_leftovers() -> list[str]:
    """Tables named as partitions that are no longer attached: only retention detaches,
    so each is a day or month whose drop did not finish."""
    with db.engine.connect() as connection:
        return sorted(connection.execute(text(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
            "AND relname ~ '^metrics_(raw|agg)_p[0-9]+$'")).scalars())


def create_partition(connection, kind: str, name: str, first: date, after: date) -> int:
    """Create one range partition, moving the rows its range holds in the default into it
    (in the caller's transaction). Returns how many rows moved."""
    parent, default = f"metrics_{kind}", f"metrics_{kind}_default"
    bounds = {"first": _at(first), "after": _at(after)}
    connection.execute(text(
        f"CREATE TEMP TABLE moving ON COMMIT DROP AS WITH moved AS ("
        f"DELETE FROM {default} WHERE timestamp >= :first AND timestamp < :after "
        f"RETURNING *) SELECT * FROM moved"), bounds)
    connection.execute(text(
        f"CREATE TABLE {name} PARTITION OF {parent} "
        f"FOR VALUES FROM ('{_at(first).isoformat()}') TO ('{_at(after).isoformat()}')"))
    moved = connection.execute(text(f"INSERT INTO {parent} SELECT * FROM moving")).rowcount
    connection.execute(text("DROP TABLE moving"))
    if moved:
        log.warning("moved %d rows from %s into the new partition %s", moved, default, name)
    return moved


def _ddl(statement) -> None:
    """Run `statement(connection)` in its own transaction under a short lock_timeout,
    retried while the lock is busy (the flush and queries keep running meanwhile)."""
    for attempt in range(1, DDL_ATTEMPTS + 1):
        try:
            with db.engine.begin() as connection:
                connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                statement(connection)
            return
        except Exception as exc:  # psycopg2's LockNotAvailable, wrapped by SQLAlchemy
            if "lock timeout" not in str(exc) or attempt == DDL_ATTEMPTS:
                raise
            log.warning("partition DDL waited too long for a lock; retrying (%d)", attempt)
            time.sleep(0.5 * attempt)


def maintain(now: datetime | None, raw_days: int, agg_days: int) -> dict[str, int]:
    """Create the missing partitions (from the retention's start to 3 days ahead)."""
    if not is_partitioned():
        return {"created": 0, "moved": 0}
    now = now or datetime.now(UTC)
    with db.engine.connect() as connection:
        if connection.scalar(text("SELECT to_regclass('metrics_raw')")) is None:
            return {"created": 0, "moved": 0}  # not (or no longer) partitioned: a downgrade
        present = existing(connection)
    created = moved = 0
    for kind, name, first, after in wanted(now, raw_days, agg_days):
        if name in present:
            continue
        result = {}

        def create(connection, kind=kind, name=name, first=first, after=after, out=result):
            out["moved"] = create_partition(connection, kind, name, first, after)

        _ddl(create)
        created += 1
        moved += result.get("moved", 0)
    return {"created": created, "moved": moved}


def _bounds_of(name: str) -> tuple[str, date] | None:
    """(kind, first day) from a partition's name."""
    for kind in KINDS:
        prefix = f"metrics_{kind}_p"
        if name.startswith(prefix):
            digits = name[len(prefix):]
            try:
                if kind == "raw":
                    return kind, datetime.strptime(digits, "%Y%m%d").date()
                return kind, datetime.strptime(digits, "%Y%m").date()
            except ValueError:
                return None
    return None


def drop_expired(now: datetime, raw_days: int, agg_days: int) -> dict[str, int]:
    """Drop the partitions wholly past retention; delete expired rows from the defaults."""
    cutoff = {"raw": now - timedelta(days=raw_days), "agg": now - timedelta(days=agg_days)}
    with db.engine.connect() as connection:
        present = existing(connection)
    dropped = 0
    for name in sorted(present):
        bounds = _bounds_of(name)
        if bounds is None:
            continue
        kind, first = bounds
        after = first + timedelta(days=1) if kind == "raw" else _next_month(first)
        if _at(after) <= cutoff[kind]:
            # Detached first, in its own transaction (milliseconds): the DROP's commit
            # removes the files — seconds for a 6 GB day on a file system that discards
            # freed blocks as it frees them — and holds its lock until then, which on a
            # still attached partition would be the parent's, stalling flush and reads.
            _ddl(lambda connection, kind=kind, name=name: connection.execute(text(
                f"ALTER TABLE metrics_{kind} DETACH PARTITION {name}")))
            _ddl(lambda connection, name=name: connection.execute(text(f"DROP TABLE {name}")))
            dropped += 1
    for name in detached_leftovers():  # a run stopped between its detach and its drop
        _ddl(lambda connection, name=name: connection.execute(text(f"DROP TABLE {name}")))
        dropped += 1
    deleted = 0
    with db.engine.begin() as connection:
        for kind, before in cutoff.items():
            deleted += connection.execute(text(
                f"DELETE FROM metrics_{kind}_default WHERE timestamp < :before"),
                {"before": before}).rowcount
    return {"partitions_dropped": dropped, "default_rows_deleted": deleted}
