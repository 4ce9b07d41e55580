"""Node status and uptime_24h, from last_seen_at and per-minute presence in Redis."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from app.extensions import get_redis
from app.models import Node
from app.services.keys import node_seen_key, presence_key
from app.services.nodes import node_status

MINUTES_PER_DAY = 1440


def _day(ts: datetime) -> str:
    return ts.strftime("%Y%m%d")


def mark_present(pipe, prefix: str, node_id: str, at: datetime) -> None:
    """Set the bit of `at`'s minute in the node's day bitmap (queued on a pipeline)."""
    minute = at.hour * 60 + at.minute
    key = presence_key(prefix, node_id, _day(at))
    pipe.setbit(key, minute, 1)
    pipe.expire(key, 3 * 86400)


def uptime_24h(node_ids: Sequence[str], now: datetime | None = None) -> dict[str, float]:
    """% of the last 1,440 whole minutes in which each node sent a heartbeat."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=MINUTES_PER_DAY)
    yesterday, today = _day(start), _day(now)
    handle = get_redis()
    pipe = handle.client.pipeline()
    for node_id in node_ids:
        pipe.get(presence_key(handle.prefix, node_id, yesterday))
        pipe.get(presence_key(handle.prefix, node_id, today))
    raw = pipe.execute()
    first_minute = start.hour * 60 + start.minute
    result = {}
    for i, node_id in enumerate(node_ids):
        old, new = raw[2 * i] or b"", raw[2 * i + 1] or b""
        # Window: [start, now) = yesterday's minutes from first_minute on + today's before now.
        count = _count_bits(old, first_minute, MINUTES_PER_DAY) + _count_bits(
            new, 0, now.hour * 60 + now.minute)
        result[node_id] = round(100.0 * count / MINUTES_PER_DAY, 2)
    return result


def _count_bits(bitmap: bytes, start_bit: int, end_bit: int) -> int:
    total = 0
    for bit in range(start_bit, end_bit):
        byte = bit >> 3
        if byte < len(bitmap) and bitmap[byte] & (0x80 >> (bit & 7)):
            total += 1
    return total


def fresh_last_seen(node_ids: Sequence[str]) -> dict[str, datetime]:
    """last_seen_at from Redis, newer than the database's until the next flush."""
    handle = get_redis()
    pipe = handle.client.pipeline(transaction=False)
    for node_id in node_ids:
        pipe.hget(node_seen_key(handle.prefix, node_id), "last_seen_ms")
    return {node_id: datetime.fromtimestamp(int(raw) / 1000, UTC)
            for node_id, raw in zip(node_ids, pipe.execute(), strict=True) if raw}


def node_views(nodes: Sequence[Node]) -> list[dict]:
    """Nodes as the API shows them: columns plus status and uptime_24h."""
    ids = [str(n.id) for n in nodes]
    uptimes = uptime_24h(ids)
    seen = fresh_last_seen(ids)
    views = []
    for node in nodes:
        view = {c.key: getattr(node, c.key) for c in Node.__mapper__.column_attrs}
        if str(node.id) in seen:
            view["last_seen_at"] = seen[str(node.id)]
        # The status follows the freshest last_seen (Redis, until the flush writes it).
        view["status"] = node_status(view["last_seen_at"])
        view["uptime_24h"] = uptimes[str(node.id)]
        views.append(view)
    return views
