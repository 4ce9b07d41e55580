"""The live hour in Redis sorted sets, one per series (a probe, or "_node" for the summary).

A member is a compact encoding derived from the point itself — `<ts_ms hex>:<latency
centi-ms>:<loss centi-%>:<jitter centi-ms>` (~20 bytes) — so a re-sent point is the same
member and replaces itself, and the set stays in Redis's listpack encoding (≤ 64 B a
point, see bench/flush.py). The score is the point's epoch-ms timestamp.
"""

from __future__ import annotations

from typing import NamedTuple

from app.redis_keys import live_key

LIVE_WINDOW_MS = 3600 * 1000
# The key outlives the window a little so a quiet series is still there to trim.
LIVE_TTL_SECONDS = 3600 + 300
NODE_SERIES = "_node"


class Point(NamedTuple):
    """One measured point: a probe run's result or a node summary (a tuple: made for
    every point of every heartbeat, so as cheap to build as Python allows)."""

    series: str  # probe id, or NODE_SERIES
    ts_ms: int
    latency_ms: float
    packet_loss_rate: float
    jitter_ms: float


def encode_member(point: Point) -> bytes:
    return b"%x:%d:%d:%d" % (
        point.ts_ms, round(point.latency_ms * 100), round(point.packet_loss_rate * 100),
        round(point.jitter_ms * 100),
    )


def decode_member(series: str, member: bytes) -> Point:
    ts_hex, latency, loss, jitter = member.split(b":")
    return Point(series, int(ts_hex, 16), int(latency) / 100, int(loss) / 100, int(jitter) / 100)


def read_series(client, prefix: str, node_id: str, series: str, from_ms: int | None = None,
                to_ms: int | None = None, now_ms: int | None = None) -> list[Point]:
    """Points of one series in [from_ms, to_ms], oldest first, one per timestamp."""
    key = live_key(prefix, node_id, series)
    low = "-inf" if from_ms is None else from_ms
    if now_ms is not None:
        low = max(now_ms - LIVE_WINDOW_MS, from_ms or 0)
    high = "+inf" if to_ms is None else to_ms
    points: dict[int, Point] = {}
    for member, _score in client.zrangebyscore(key, low, high, withscores=True):
        point = decode_member(series, member)
        # One point per instant. A re-send with *other* values at the same instant leaves
        # two members; reads show the lowest-encoded one, deterministically (the database
        # keeps the first that was flushed). Beacons never re-send altered points.
        points.setdefault(point.ts_ms, point)
    return [points[ts] for ts in sorted(points)]


def read_many(client, prefix: str, node_id: str, series_ids: list[str],
              now_ms: int) -> dict[str, list[Point]]:
    """The live hour of several series in one round trip."""
    pipe = client.pipeline(transaction=False)
    low = now_ms - LIVE_WINDOW_MS
    for series in series_ids:
        pipe.zrangebyscore(live_key(prefix, node_id, series), low, "+inf")
    result = {}
    for series, members in zip(series_ids, pipe.execute(), strict=True):
        points = {}
        for member in members:
            point = decode_member(series, member)
            points.setdefault(point.ts_ms, point)
        result[series] = [points[ts] for ts in sorted(points)]
    return result
