"""The pending queue: a Redis stream with a consumer group, drained by the flush task.

One stream entry per accepted heartbeat carries its probe points in a compact text form.
Entries are acknowledged and deleted only after their rows are committed; entries left
by a dead consumer are reclaimed with XAUTOCLAIM.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from typing import NamedTuple

import redis

from app.history.live_cache import ERROR_CHARS, ERROR_CODES, Point
from app.redis_keys import pending_points_key, pending_stream

GROUP = "flushers"


class PendingRow(NamedTuple):
    node_id: str
    probe_id: str
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
    error: str | None = None


def encode_points(points: Iterable[Point]) -> bytes:
    """`probe,ts,latency,loss,jitter,min,median,p95,max,sent,received,error` per point,
    `;`-separated; an empty field is a missing value (a number is its repr), the error one
    character. Built as text and encoded once: it runs for every point ingested."""
    return ";".join(
        ",".join((p.series, "%d" % p.ts_ms,  # noqa: UP031 (b"%d" before: the same text)
                  *["" if value is None else repr(value) for value in p[2:11]],
                  ERROR_CHARS.get(p.error or "", "")))
        for p in points
    ).encode()


def _float(text: bytes) -> float | None:
    return float(text) if text else None


def _int(text: bytes) -> int | None:
    return int(text) if text else None


def decode_entry(fields: dict) -> list[PendingRow]:
    node_id = fields[b"n"].decode()
    rows = []
    for item in fields[b"p"].split(b";"):
        if not item:
            continue
        parts = item.split(b",")
        if len(parts) == 5:  # written before the run's spread was kept (one release)
            parts += [b""] * 7
        probe_id, ts_ms, lat, loss, jit, low, med, p95, high, sent, received, error = parts
        rows.append(PendingRow(node_id, probe_id.decode(), int(ts_ms), _float(lat),
                               float(loss), _float(jit), _float(low), _float(med),
                               _float(p95), _float(high), _int(sent), _int(received),
                               ERROR_CODES.get(error.decode())))
    return rows


def append_command(prefix: str, node_id: str, points: list[Point]) -> tuple:
    """XADD of one entry carrying these points (for redis_wire.round_trip)."""
    return ("XADD", pending_stream(prefix), "*", "n", node_id, "p", encode_points(points))


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def ensure_group(client, prefix: str) -> None:
    try:
        client.xgroup_create(pending_stream(prefix), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def claim_abandoned(client, prefix: str, consumer: str, min_idle_ms: int,
                    count: int = 500) -> list[tuple[bytes, dict]]:
    """Entries another consumer read but never acknowledged for min_idle_ms."""
    claimed: list[tuple[bytes, dict]] = []
    start = "0-0"
    for _ in range(100):  # bounded: at most 100 pages per call
        result = client.xautoclaim(pending_stream(prefix), GROUP, consumer, min_idle_ms,
                                   start_id=start, count=count)
        next_start, entries = result[0], result[1]
        claimed.extend(e for e in entries if e[1])
        if next_start in (b"0-0", "0-0") or not entries:
            break
        start = next_start
    return claimed


def read_new(client, prefix: str, consumer: str, count: int) -> list[tuple[bytes, dict]]:
    response = client.xreadgroup(GROUP, consumer, {pending_stream(prefix): ">"}, count=count)
    if not response:
        return []
    return [e for e in response[0][1] if e[1]]


def acknowledge(client, prefix: str, entry_ids: list[bytes], points: int) -> None:
    """XACK + XDEL the entries and take their points off the pending count, atomically."""
    pipe = client.pipeline()
    queue_acknowledge(pipe, prefix, entry_ids, points)
    pipe.execute()


def queue_acknowledge(pipe, prefix: str, entry_ids: list[bytes], points: int) -> None:
    if not entry_ids:
        return
    pipe.xack(pending_stream(prefix), GROUP, *entry_ids)
    pipe.xdel(pending_stream(prefix), *entry_ids)
    pipe.decrby(pending_points_key(prefix), points)


def count_command(prefix: str, points: int) -> tuple:
    """Add to the pending point count (its new value is the reply)."""
    return ("INCRBY", pending_points_key(prefix), points)


def reset_count_if_empty(client, prefix: str) -> None:
    """The count is advisory (early flushes, /metrics); re-zero it when the stream is empty."""
    if client.xlen(pending_stream(prefix)) == 0:
        client.set(pending_points_key(prefix), 0)


def pending_length(client, prefix: str) -> int:
    return int(client.xlen(pending_stream(prefix)))
