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
from app.models import Node
from app.redis_keys import node_seen_key, presence_key
from app.services.nodes import node_status
from app.services.presence import uptime_from_bitmaps, uptime_window
from app.timeutil import from_ms, to_ms

SORT_KEYS = ("name", "status", "region", "last_seen", "latency", "loss", "jitter", "uptime")
STATUSES = ("online", "offline", "never")
SPARK_BUCKET_MS = 60_000


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
    `status` on online/offline/never; `sort` is one of SORT_KEYS."""
    now = now or datetime.now(UTC)
    query = select(Node.id, Node.name, Node.region, Node.last_seen_at, Node.first_seen_at)
    if text:
        pattern = _like(text.strip())
        query = query.where(or_(Node.name.ilike(pattern, escape="\\"),
                                Node.region.ilike(pattern, escape="\\")))
    nodes = db.session.execute(query).all()
    rows = _current_rows(nodes, now)
    counts = {s: 0 for s in STATUSES}
    for row in rows:
        counts[row.status] += 1
    if status in STATUSES:
        rows = [r for r in rows if r.status == status]
    rows = _sorted(rows, sort if sort in SORT_KEYS else "name", descending)
    total = len(rows)
    pages = max(1, (total + per_page - 1) // per_page)
    page = min(max(1, page), pages)
    shown = rows[(page - 1) * per_page: page * per_page]
    _add_sparklines(shown, now)
    return Overview(shown, total, page, pages, counts)


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _current_rows(nodes, now: datetime) -> list[OverviewRow]:
    """Rows with Redis's view of each node: one pipelined round trip for all of them."""
    handle = get_redis()
    spans = uptime_window(now)
    pipe = handle.client.pipeline(transaction=False)
    for node in nodes:
        node_id = str(node.id)
        pipe.hmget(node_seen_key(handle.prefix, node_id), "last_seen_ms", "first_seen_ms")
        pipe.zrange(live_cache.live_key(handle.prefix, node_id, NODE_SERIES), -1, -1)
        for day, _first, _end in spans:
            pipe.get(presence_key(handle.prefix, node_id, day))
    replies = pipe.execute()
    per_node = 2 + len(spans)
    live_from_ms = to_ms(now) - LIVE_WINDOW_MS
    rows = []
    for index, node in enumerate(nodes):
        (last_raw, first_raw), members, *bitmaps = replies[index * per_node:
                                                           (index + 1) * per_node]
        # Redis is fresher than the database until the next flush (as node_views reads).
        last_seen = from_ms(int(last_raw)) if last_raw else _utc(node.last_seen_at)
        first_seen = (_utc(node.first_seen_at) or (from_ms(int(first_raw)) if first_raw
                                                   else None) or last_seen)
        latest = live_cache.decode_member(NODE_SERIES, members[0]) if members else None
        if latest is not None and latest.ts_ms < live_from_ms:
            latest = None  # not trimmed yet, but older than the live hour
        rows.append(OverviewRow(
            node_id=node.id, name=node.name, region=node.region,
            status=node_status(last_seen, now), last_seen_at=last_seen,
            latency_ms=_latency(latest) if latest else None,
            packet_loss_rate=latest.packet_loss_rate if latest else None,
            jitter_ms=latest.jitter_ms if latest and _latency(latest) is not None else None,
            uptime_24h=uptime_from_bitmaps(bitmaps, spans, now, first_seen),
        ))
    return rows


def _add_sparklines(rows: list[OverviewRow], now: datetime) -> None:
    """The live hour of each shown node's summary, folded to one point a minute."""
    if not rows:
        return
    handle = get_redis()
    now_ms = to_ms(now)
    pipe = handle.client.pipeline(transaction=False)
    for row in rows:
        pipe.zrangebyscore(live_cache.live_key(handle.prefix, str(row.node_id), NODE_SERIES),
                           now_ms - LIVE_WINDOW_MS, "+inf")
    for row, members in zip(rows, pipe.execute(), strict=True):
        minutes: dict[int, list] = {}
        for member in members:
            point = live_cache.decode_member(NODE_SERIES, member)
            minutes.setdefault(point.ts_ms - point.ts_ms % SPARK_BUCKET_MS, []).append(point)
        spark = []
        for minute in sorted(minutes):
            points = minutes[minute]
            latencies = [lat for lat in map(_latency, points) if lat is not None]
            spark.append((minute, sum(latencies) / len(latencies) if latencies else None,
                          max(p.packet_loss_rate or 0 for p in points)))
        row.sparkline = spark
