"""The live hour in Redis sorted sets, one per series (a probe, or "_node" for the summary).

A member is a fixed 43-byte binary encoding derived from the point itself, so a re-sent
point is the same member and replaces itself: the timestamp in ms (8 bytes), latency,
jitter, min, median, p95 and max in centi-ms (4 bytes each), loss in centi-% (2), sent and
received (4 each) and the error as one character (1); all ones mark a missing value (a run
that received nothing has no latency). Fixed size keeps every member under Redis's
64-byte listpack limit whatever the values (SPEC §9), and packing with `struct` costs
~1 µs where a text encoding in Python cost ~20 µs a point. The score is the point's
epoch-ms timestamp.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from app.redis_keys import live_key

LIVE_WINDOW_MS = 3600 * 1000
# The key outlives the window a little so a quiet series is still there to trim.
LIVE_TTL_SECONDS = 3600 + 300
NODE_SERIES = "_node"

# SPEC §7's error codes, one character each in the member and the pending queue.
ERROR_CHARS = {
    "ERR_CONNECTION_REFUSED": "r",
    "ERR_CONNECTION_TIMEOUT": "t",
    "ERR_NETWORK_UNREACHABLE": "u",
    "ERR_DNS": "d",
    "ERR_SOCKET": "s",
}
ERROR_CODES = {char: code for code, char in ERROR_CHARS.items()}


class Point(NamedTuple):
    """One measured point: a probe run's result or a node summary (a tuple: made for
    every point of every heartbeat, so as cheap to build as Python allows). Latency and
    jitter are None for a run that received nothing."""

    series: str  # probe id, or NODE_SERIES
    ts_ms: int
    latency_ms: float | None
    packet_loss_rate: float
    jitter_ms: float | None
    latency_min_ms: float | None = None
    latency_median_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_max_ms: float | None = None
    sent: int | None = None
    received: int | None = None
    error: str | None = None  # a SPEC §7 code (ERR_…); one character in encodings


_MEMBER = struct.Struct(">QIIIIIIHIIc")
# A member's time, latency and loss only (the other fields skipped): what a sparkline
# draws, for a page of 100 nodes' live hours (6,000 members) without a Point each.
_TIME_LATENCY_LOSS = struct.Struct(">QI20xH")
_NONE32 = 0xFFFFFFFF
_ERROR_BYTES = {code: char.encode() for code, char in ERROR_CHARS.items()}
_ERROR_OF_BYTE = {char.encode(): code for code, char in ERROR_CHARS.items()}


def _uncenti(value: int) -> float | None:
    return None if value == _NONE32 else value / 100


def _uncount(value: int) -> int | None:
    return None if value == _NONE32 else value


def encode_member(point: Point) -> bytes:
    # Centi-units and counts, all ones for None, written out without helper calls: this
    # runs for every point ingested (1.5 µs, was 2.6).
    _, ts, latency, loss, jitter, low, median, p95, high, sent, received, error = point
    return _MEMBER.pack(
        ts, _NONE32 if latency is None else round(latency * 100),
        _NONE32 if jitter is None else round(jitter * 100),
        _NONE32 if low is None else round(low * 100),
        _NONE32 if median is None else round(median * 100),
        _NONE32 if p95 is None else round(p95 * 100),
        _NONE32 if high is None else round(high * 100),
        round(loss * 100), _NONE32 if sent is None else sent,
        _NONE32 if received is None else received, _ERROR_BYTES.get(error, b"-"))


def decode_member(series: str, member: bytes) -> Point:
    ts, lat, jit, low, med, p95, high, loss, sent, received, error = _MEMBER.unpack(member)
    return Point(series, ts, _uncenti(lat), loss / 100, _uncenti(jit), _uncenti(low),
                 _uncenti(med), _uncenti(p95), _uncenti(high), _uncount(sent),
                 _uncount(received), _ERROR_OF_BYTE.get(error))


def decode_time_latency_loss(member: bytes) -> tuple[int, float | None, float]:
    """(ts_ms, latency_ms, packet_loss_rate) of a member; latency None when the point has
    none or received nothing (loss 100 %)."""
    ts, latency, loss = _TIME_LATENCY_LOSS.unpack_from(member)
    if latency == _NONE32 or loss >= 10_000:
        return ts, None, loss / 100
    return ts, latency / 100, loss / 100


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
