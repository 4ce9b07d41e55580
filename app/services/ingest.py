"""Heartbeat ingest: validate, then one pipelined Redis round trip per request.

An accepted point is in Redis (live cache + pending stream) when the call returns; the
flush task persists it to the database. Nothing here queries the database, except to
fill the Redis node cache on a miss (node_cache).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app

from app.extensions import get_redis
from app.services import node_cache, pending
from app.services.errors import ApiError
from app.services.heartbeat_rules import CODES, ValidHeartbeat, validate_heartbeat
from app.services.keys import flush_queued_key, seen_dirty_key
from app.services.live_cache import NODE_SERIES, Point
from app.services.node_cache import node_state
from app.services.node_writes import execute, node_write
from app.services.scheduling import request_early_flush
from app.telemetry import HEARTBEATS

log = logging.getLogger(__name__)
EARLY_FLUSH_PENDING = 100
_ACCEPTED = HEARTBEATS.labels(outcome="accepted")  # bound once: labels() is a lookup


@dataclass
class Outcome:
    accepted: int = 0
    error: ApiError | None = None


@dataclass
class IngestResult:
    outcomes: list[Outcome] = field(default_factory=list)
    expected_version: str = ""
    drift_detected: bool = False

    @property
    def accepted(self) -> int:
        return sum(o.accepted for o in self.outcomes)


def _problem_error(fields: dict[str, list[str]]) -> ApiError:
    from app.api.errors import validation_error  # the one place codes are chosen

    return validation_error(fields, CODES)


def judge(body, node_id: uuid.UUID, probe_ids: frozenset[str], now_ms: int,
          oldest_ms: int) -> tuple[ValidHeartbeat | None, ApiError | None]:
    """Shape, ranges and probe ownership of one heartbeat item."""
    valid, problems = validate_heartbeat(body, node_id, now_ms, oldest_ms)
    if valid is None:
        return None, _problem_error(problems.fields)
    foreign = sorted({r[0] for r in valid.results} - probe_ids)
    if foreign:
        return None, ApiError(400, "ERR_PROBE_NOT_FOUND",
                              f"Probe {foreign[0]} does not belong to this node",
                              {"probe_ids": foreign})
    return valid, None


class _Judge:
    """Judges items against the node's state; before refusing a probe id it re-reads the
    state from Redis once (the process cache may predate a probe created elsewhere)."""

    def __init__(self, node_id: uuid.UUID, now_ms: int) -> None:
        self.node_id, self.now_ms = node_id, now_ms
        self.oldest_ms = now_ms - current_app.config["PULSE_RAW_RETENTION_DAYS"] * 86400 * 1000
        self.expected_version, self.probe_ids = node_state(node_id)
        self._revalidated = False

    def __call__(self, body) -> tuple[ValidHeartbeat | None, ApiError | None]:
        valid, error = judge(body, self.node_id, self.probe_ids, self.now_ms, self.oldest_ms)
        if error is not None and error.code == "ERR_PROBE_NOT_FOUND" and not self._revalidated:
            self._revalidated = True
            self.expected_version, self.probe_ids = node_state(self.node_id, fresh=True)
            valid, error = judge(body, self.node_id, self.probe_ids, self.now_ms,
                                 self.oldest_ms)
        return valid, error


def ingest(node_id: uuid.UUID, items: list, now: datetime | None = None) -> IngestResult:
    """Judge every item; store the valid ones in one Redis round trip."""
    now = now or datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    judge_item = _Judge(node_id, now_ms)
    result = IngestResult()
    valid_items: list[ValidHeartbeat] = []
    for body in items:
        valid, error = judge_item(body)
        outcome = Outcome(error=error)
        if valid is not None:
            outcome.accepted = len(valid.results)
            valid_items.append(valid)
        result.outcomes.append(outcome)
        HEARTBEATS.labels(outcome="accepted" if error is None else error.code).inc()
    result.expected_version = judge_item.expected_version
    if valid_items:
        _store(node_id, valid_items, now, now_ms)
        # Drift is judged on the newest heartbeat's declared version.
        newest = max(valid_items, key=lambda v: v.ts_ms)
        result.drift_detected = newest.config_version != result.expected_version
    return result


def ingest_if_valid(node_id: uuid.UUID, body) -> IngestResult | None:
    """One heartbeat, for the hot path: stored and its result returned when it is valid;
    None — nothing stored or counted — when it is not, so that the caller can hand it to
    `ingest`, which reports why."""
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    judge_item = _Judge(node_id, now_ms)
    valid, error = judge_item(body)
    if valid is None:
        return None
    _store(node_id, [valid], now, now_ms)
    _ACCEPTED.inc()
    return IngestResult(outcomes=[Outcome(accepted=len(valid.results))],
                        expected_version=judge_item.expected_version,
                        drift_detected=valid.config_version != judge_item.expected_version)


MAX_METADATA_BYTES = 4096
KNOWN_METADATA = ("hostname", "ip_address", "region", "kubernetes_pod", "kubernetes_namespace")


def _bounded_metadata(metadata: dict) -> str:
    """JSON of the reported metadata; when too large, only its well-known short keys."""
    text = json.dumps(metadata, separators=(",", ":"), default=str)
    if len(text) <= MAX_METADATA_BYTES:
        return text
    known = {k: str(metadata[k])[:255] for k in KNOWN_METADATA if metadata.get(k) is not None}
    return json.dumps(known, separators=(",", ":"))


def _store(node_id: uuid.UUID, items: list[ValidHeartbeat], now: datetime, now_ms: int) -> None:
    handle = get_redis()
    node = str(node_id)
    summaries = [Point(NODE_SERIES, v.ts_ms, *v.summary) for v in items]
    points = [Point(*r) for v in items for r in v.results]
    newest = max(items, key=lambda v: v.ts_ms)
    seen = {"last_seen_ms": now_ms}
    if newest.config_version is not None:
        seen["config_version"] = newest.config_version
    if newest.agent_version is not None:
        seen["agent_version"] = newest.agent_version
    if newest.metadata:
        seen["metadata"] = _bounded_metadata(newest.metadata)
    write = node_write(handle.prefix, node, summaries + points, now_ms, present_at=now,
                       seen=seen)
    commands = write.commands
    if points:
        commands.append(pending.append_command(handle.prefix, node, points))
    count_reply = len(commands)  # the INCRBY's reply: the new pending point count
    commands.append(pending.count_command(handle.prefix, len(points)))
    commands.append(("SADD", seen_dirty_key(handle.prefix), node))
    # Whether an early flush is queued already rides along: in the steady state (it is)
    # that saves request_early_flush's own round trip; it still sets the flag with NX.
    commands.append(("EXISTS", flush_queued_key(handle.prefix)))
    # Keeps this process's reading of the node epoch fresh, so its in-memory node cache
    # needs no round trip of its own (node_cache).
    read_epoch = node_cache.epoch_command(handle.prefix)
    commands.append(read_epoch)
    started = node_cache.epoch_clock()
    replies = execute(handle.client, commands)
    node_cache.observe_epoch(read_epoch, replies[-1], read_at=started)
    if replies[count_reply] >= EARLY_FLUSH_PENDING and not replies[-2]:
        try:
            request_early_flush()
        except Exception:  # the points are stored; the periodic flush takes them anyway
            log.warning("could not queue an early flush", exc_info=True)
