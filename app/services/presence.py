"""Node status and uptime_24h, from last_seen_at and per-minute presence in Redis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from app.extensions import get_redis
from app.models import Node
from app.redis_keys import node_seen_key, presence_key
from app.services.nodes import node_status
from app.timeutil import from_ms

MINUTES_PER_DAY = 1440


def _day(ts: datetime) -> str:
    return ts.strftime("%Y%m%d")


def mark_present(pipe, prefix: str, node_id: str, at: datetime) -> None:
    """Set the bit of `at`'s minute in the node's day bitmap (queued on a pipeline).

    Ingest sets the same bit in its own round trip (app.ingest.store); this is for seeding presence
    outside a heartbeat (tests, imports)."""
    minute = at.hour * 60 + at.minute
    key = presence_key(prefix, node_id, _day(at))
    pipe.setbit(key, minute, 1)
    pipe.expire(key, 3 * 86400)


def _minute_of_day(ts: datetime) -> int:
    return ts.hour * 60 + ts.minute


def _window_spans(now: datetime) -> list[tuple[str, int, int]]:
    """(day, first bit, end bit) of the last 1,440 minutes, the current one included.

    The current minute counts: a node that has just sent its first heartbeat is up, not
    at 0 %. The window spans one day or two (it starts 1,439 minutes back).
    """
    first = now - timedelta(minutes=MINUTES_PER_DAY - 1)
    end_bit = _minute_of_day(now) + 1
    if _day(first) == _day(now):
        return [(_day(now), _minute_of_day(first), end_bit)]
    return [(_day(first), _minute_of_day(first), MINUTES_PER_DAY), (_day(now), 0, end_bit)]


def uptime_24h(node_ids: Sequence[str], now: datetime | None = None,
               first_seen: Mapping[str, datetime | None] | None = None) -> dict[str, float | None]:
    """% of the last 1,440 minutes (the current one included) with a heartbeat, per node,
    counted from the node's first heartbeat when that is more recent (a node up for 10
    minutes is at 100 %, not 0.7 %); None for a node never seen."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    spans = _window_spans(now)
    handle = get_redis()
    pipe = handle.client.pipeline()
    for node_id in node_ids:
        for day, _first, _end in spans:
            pipe.get(presence_key(handle.prefix, node_id, day))
    raw = iter(pipe.execute())
    first_seen = first_seen or {}
    result: dict[str, float | None] = {}
    for node_id in node_ids:
        count = sum(_count_bits(next(raw) or b"", first, end) for _, first, end in spans)
        minutes = MINUTES_PER_DAY
        since = first_seen.get(node_id)
        if since is not None:
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            lived = int((now - since.replace(second=0, microsecond=0)).total_seconds() // 60) + 1
            minutes = max(1, min(MINUTES_PER_DAY, lived))
        elif node_id in first_seen:  # known never to have reported
            result[node_id] = None
            continue
        result[node_id] = round(min(100.0, 100.0 * count / minutes), 2)
    return result


def _count_bits(bitmap: bytes, start_bit: int, end_bit: int) -> int:
    """Set bits in [start_bit, end_bit) of a Redis bitmap (bit 0 = the first byte's MSB).

    One big-int mask and popcount instead of a Python loop over up to 1,440 bits per node
    (a node list of 500 would otherwise cost ~0.7 M iterations per request).
    """
    size = len(bitmap) * 8
    end_bit = min(end_bit, size)
    if end_bit <= start_bit:
        return 0
    window = int.from_bytes(bitmap, "big") >> (size - end_bit)
    return (window & ((1 << (end_bit - start_bit)) - 1)).bit_count()


def fresh_seen(node_ids: Sequence[str]) -> dict[str, tuple[datetime, datetime | None]]:
    """(last seen, first seen) from Redis, newer than the database's until the next flush."""
    handle = get_redis()
    pipe = handle.client.pipeline(transaction=False)
    for node_id in node_ids:
        pipe.hmget(node_seen_key(handle.prefix, node_id), "last_seen_ms", "first_seen_ms")
    seen = {}
    for node_id, (last, first) in zip(node_ids, pipe.execute(), strict=True):
        if last:
            seen[node_id] = (from_ms(int(last)), from_ms(int(first)) if first else None)
    return seen


def node_views(nodes: Sequence[Node]) -> list[dict]:
    """Nodes as the API shows them: columns plus status and uptime_24h."""
    ids = [str(n.id) for n in nodes]
    seen = fresh_seen(ids)
    views, first_seen = [], {}
    for node in nodes:
        view = {c.key: getattr(node, c.key) for c in Node.__mapper__.column_attrs}
        last, first = seen.get(str(node.id), (None, None))
        if last is not None:
            view["last_seen_at"] = last
        view["first_seen_at"] = view["first_seen_at"] or first or view["last_seen_at"]
        # The status follows the freshest last_seen (Redis, until the flush writes it).
        view["status"] = node_status(view["last_seen_at"])
        first_seen[str(node.id)] = view["first_seen_at"]
        views.append(view)
    uptimes = uptime_24h(ids, first_seen=first_seen)
    for view in views:
        view["uptime_24h"] = uptimes[str(view["id"])]
    return views


def uptime_window(now: datetime | None = None) -> list[tuple[str, int, int]]:
    """The (day, first bit, end bit) spans uptime_24h reads, for callers that fetch the
    day bitmaps in their own round trip (the dashboard overview)."""
    return _window_spans((now or datetime.now(UTC)).replace(second=0, microsecond=0))


def uptime_from_bitmaps(bitmaps: Sequence[bytes | None], spans: list[tuple[str, int, int]],
                        now: datetime, first_seen: datetime | None) -> float | None:
    """uptime_24h (as it counts it) from the bitmaps of `spans`, one each, in order; None
    for a node never seen (`first_seen` None)."""
    if first_seen is None:
        return None
    now = now.replace(second=0, microsecond=0)
    first_seen = first_seen if first_seen.tzinfo else first_seen.replace(tzinfo=UTC)
    count = sum(_count_bits(bitmap or b"", first, end)
                for bitmap, (_day, first, end) in zip(bitmaps, spans, strict=True))
    lived = int((now - first_seen.replace(second=0, microsecond=0)).total_seconds() // 60) + 1
    minutes = max(1, min(MINUTES_PER_DAY, lived))
    return round(min(100.0, 100.0 * count / minutes), 2)
