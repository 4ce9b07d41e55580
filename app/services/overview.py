"""The dashboard overview: every node's status, latest summary, uptime and live hour.

Built for a thousand nodes: one SQL query for the nodes, one Redis round trip for every
node's last-seen time, newest summary point and presence bitmaps (what filtering and
sorting need), and one more round trip for the sparklines of the page shown only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import or_, select

from app.extensions import db, get_redis
from app.history import live_cache
from app.history.live_cache import LIVE_WINDOW_MS, NODE_SERIES
from app.ingest.redis_wire import raise_error_replies, round_trip
from app.models import Node
from app.redis_keys import node_seen_key, presence_key
from app.services.nodes import node_status
from app.services.presence import uptime_from_bitmaps, uptime_window
from app.timeutil import from_ms, to_ms

SORT_KEYS = ("name", "status", "region", "last_seen", "latency", "loss", "jitter", "uptime")
STATUSES = ("online", "offline", "never")
SPARK_BUCKET_MS = 60_000
VALUE_SORTS = ("latency", "loss", "jitter", "uptime")  # need every node's live values


@dataclass
class OverviewRow:
    node_id: uuid.UUID
    name: str
    region: str | None
    status: str
    last_seen_at: datetime | None
    latency_ms: float | None
    packet_loss_rate: float | None
    jitter_ms: float | None
    uptime_24h: float | None  # None for a node never seen
    # The live hour, a point per minute: (minute ts_ms, mean latency or None, max loss).
    sparkline: list[tuple[int, float | None, float]] = field(default_factory=list)
    first_seen_at: datetime | None = None


@dataclass
class Overview:
    rows: list[OverviewRow]
    total: int  # nodes matching the filter
    page: int
    pages: int
    counts: dict[str, int]  # per status, among the nodes matching the text filter


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _latency(point) -> float | None:
    # A run (or summary) that received nothing has no latency, whatever number it carries.
    if point.latency_ms is None or (point.packet_loss_rate or 0) >= 100:
        return None
    return point.latency_ms


def _sort_value(row: OverviewRow, key: str):
    return {
        "name": row.name.lower(), "status": STATUSES.index(row.status),
        "region": (row.region or "").lower() or None,
        "last_seen": row.last_seen_at, "latency": row.latency_ms,
        "loss": row.packet_loss_rate, "jitter": row.jitter_ms, "uptime": row.uptime_24h,
    }[key]


def _sorted(rows: list[OverviewRow], key: str, descending: bool) -> list[OverviewRow]:
    """Sorted by `key`; rows without a value go last in either direction, by name."""
    present = [r for r in rows if _sort_value(r, key) is not None]
    absent = [r for r in rows if _sort_value(r, key) is None]
    present.sort(key=lambda r: r.name.lower())
    present.sort(key=lambda r: _sort_value(r, key), reverse=descending)
    absent.sort(key=lambda r: r.name.lower())
    return present + absent


def overview(text: str = "", status: str | None = None, sort: str = "name",
             descending: bool = False, page: int = 1, per_page: int = 100,
             now: datetime | None = None) -> Overview:
    """One page of the overview. `text` filters on name or region (case-insensitive),
    `status` on online/offline/never; `sort` is one of SORT_KEYS.

    Status (every node's, for the counts and the status filter) needs only each node's
    last-seen time; the latest values and uptime are read for every node only when the
    sort needs them, else for the page shown (with its sparklines, in the same trip)."""
    now = now or datetime.now(UTC)
    query = select(Node.id, Node.name, Node.region, Node.last_seen_at, Node.first_seen_at)
    if text:
        pattern = _like(text.strip())
        query = query.where(or_(Node.name.ilike(pattern, escape="\\"),
                                Node.region.ilike(pattern, escape="\\")))
    rows = _seen_rows(db.session.execute(query).all(), now)
    counts = {s: 0 for s in STATUSES}
    for row in rows:
        counts[row.status] += 1
    if status in STATUSES:
        rows = [r for r in rows if r.status == status]
    sort = sort if sort in SORT_KEYS else "name"
    by_value = sort in VALUE_SORTS
    if by_value:
        _add_live(rows, now, sparklines=False)
    rows = _sorted(rows, sort, descending)
    total = len(rows)
    pages = max(1, (total + per_page - 1) // per_page)
    page = min(max(1, page), pages)
    shown = rows[(page - 1) * per_page: page * per_page]
    _add_live(shown, now, sparklines=True, values=not by_value)
    return Overview(shown, total, page, pages, counts)


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _seen_rows(nodes, now: datetime) -> list[OverviewRow]:
    """Rows with each node's status: one round trip for every node's last-seen hash
    (Redis is fresher than the database until the next flush, as node_views reads)."""
    handle = get_redis()
    # redis_wire: hiredis packs and parses the 1,000 commands (a redis-py pipeline's
    # per-command bookkeeping cost several times more here)
    replies = raise_error_replies(round_trip(handle.client, [
        ("HMGET", node_seen_key(handle.prefix, str(node.id)), "last_seen_ms", "first_seen_ms")
        for node in nodes]))
    rows = []
    for node, (last_raw, first_raw) in zip(nodes, replies, strict=True):
        last_seen = from_ms(int(last_raw)) if last_raw else _utc(node.last_seen_at)
        first_seen = (_utc(node.first_seen_at) or (from_ms(int(first_raw)) if first_raw
                                                   else None) or last_seen)
        row = OverviewRow(node_id=node.id, name=node.name, region=node.region,
                          status=node_status(last_seen, now), last_seen_at=last_seen,
                          latency_ms=None, packet_loss_rate=None, jitter_ms=None,
                          uptime_24h=None)
        row.first_seen_at = first_seen
        rows.append(row)
    return rows


def _add_live(rows: list[OverviewRow], now: datetime, sparklines: bool,
              values: bool = True) -> None:
    """Latest summary and uptime (`values`) and the live hour (`sparklines`) of `rows`,
    in one round trip. The latest summary is the live hour's last point when it is read."""
    if not rows:
        return
    handle = get_redis()
    spans = uptime_window(now)
    now_ms = to_ms(now)
    commands: list[tuple] = []
    for row in rows:
        key = live_cache.live_key(handle.prefix, str(row.node_id), NODE_SERIES)
        if sparklines:
            commands.append(("ZRANGEBYSCORE", key, now_ms - LIVE_WINDOW_MS, "+inf"))
        elif values:
            commands.append(("ZRANGE", key, -1, -1))
        if values:
            commands += [("GET", presence_key(handle.prefix, str(row.node_id), day))
                         for day, _first, _end in spans]
    replies = iter(raise_error_replies(round_trip(handle.client, commands)))
    live_from = now_ms - LIVE_WINDOW_MS
    for row in rows:
        members = next(replies) if sparklines or values else []
        # time, latency and loss of each point: all a sparkline draws (no Point each)
        decoded = [(point, member) for member in members
                   if (point := live_cache.decode_time_latency_loss(member))[0] >= live_from]
        points = [point for point, _member in decoded]
        if values:
            bitmaps = [next(replies) for _ in spans]
            row.uptime_24h = uptime_from_bitmaps(bitmaps, spans, now, row.first_seen_at)
            newest = max(decoded, key=lambda pair: pair[0][0], default=None)
            latest = (None if newest is None else
                      live_cache.decode_member(NODE_SERIES, newest[1]))
            row.latency_ms = _latency(latest) if latest else None
            row.packet_loss_rate = latest.packet_loss_rate if latest else None
            row.jitter_ms = latest.jitter_ms if latest and row.latency_ms is not None else None
        if sparklines:
            row.sparkline = _fold_minutes(points)


def _fold_minutes(points: list[tuple[int, float | None, float]]
                  ) -> list[tuple[int, float | None, float]]:
    """The live hour a point per minute, from (ts_ms, latency, loss) points: mean latency
    of the points that have one, and the worst loss."""
    minutes: dict[int, list] = {}
    for point in points:
        minutes.setdefault(point[0] - point[0] % SPARK_BUCKET_MS, []).append(point)
    spark = []
    for minute in sorted(minutes):
        group = minutes[minute]
        latencies = [lat for _ts, lat, _loss in group if lat is not None]
        spark.append((minute, sum(latencies) / len(latencies) if latencies else None,
                      max(loss for _ts, _lat, loss in group)))
    return spark
