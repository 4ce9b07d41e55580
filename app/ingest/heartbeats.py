"""Heartbeat ingest: judge each item, then store the valid ones in one Redis round trip.

An accepted point is in Redis (live cache + pending stream) when `ingest` returns; the
flush task persists it to the database. Nothing here queries the database, except to fill
the node lookup cache on a miss.

The request counts against the node's rate limit in that same round trip; a request
that stores nothing is counted alone (rate_limit.count_request), so every request counts
once (the hot path's `accept_heartbeat` stores and counts nothing when it declines a
heartbeat: the view handles it again).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app

from app.errors import ApiError, validation_error
from app.ingest.node_lookup import node_state
from app.ingest.rules import CODES, ValidHeartbeat, validate_heartbeat
from app.ingest.store import store_heartbeats
from app.telemetry.metrics import HEARTBEATS
from app.timeutil import DAY_MS, iso_utc, to_ms

_ACCEPTED = HEARTBEATS.labels(outcome="accepted")  # bound once: labels() is a lookup


@dataclass
class Outcome:
    accepted: int = 0
    error: ApiError | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)


@dataclass
class IngestResult:
    outcomes: list[Outcome] = field(default_factory=list)
    expected_version: str = ""
    drift_detected: bool = False
    stored: bool = False  # whether anything was written (and the request counted with it)

    @property
    def accepted(self) -> int:
        return sum(o.accepted for o in self.outcomes)


def judge(body, node_id: uuid.UUID, probe_ids: frozenset[str], now_ms: int,
          oldest_ms: int) -> tuple[ValidHeartbeat | None, ApiError | None]:
    """Shape, ranges and probe ownership of one heartbeat item."""
    valid, problems = validate_heartbeat(body, node_id, now_ms, oldest_ms)
    if valid is None:
        return None, validation_error(problems.fields, CODES)
    foreign = sorted({r[0] for r in valid.results} - probe_ids)
    if foreign:
        return None, ApiError(400, "ERR_PROBE_NOT_FOUND",
                              f"Probe {foreign[0]} does not belong to this node",
                              {"probe_ids": foreign})
    return valid, None


def oldest_accepted_ms(now_ms: int) -> int:
    """The oldest timestamp a heartbeat may carry: the raw retention (SPEC §5)."""
    return now_ms - current_app.config["PULSE_RAW_RETENTION_DAYS"] * DAY_MS


class _Judge:
    """Judges items against the node's state; before refusing a probe id it re-reads the
    state from Redis once (the process cache may predate a probe created elsewhere)."""

    def __init__(self, node_id: uuid.UUID, now_ms: int) -> None:
        self.node_id, self.now_ms = node_id, now_ms
        self.oldest_ms = oldest_accepted_ms(now_ms)
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
    judge_item = _Judge(node_id, to_ms(now))
    result = IngestResult(expected_version="")
    valid_items: list[ValidHeartbeat] = []
    for body in items:
        valid, error = judge_item(body)
        result.outcomes.append(Outcome(len(valid.results), None, valid.warnings) if valid
                               else Outcome(0, error))
        if valid is not None:
            valid_items.append(valid)
    result.expected_version = judge_item.expected_version
    if valid_items:
        store_heartbeats(node_id, valid_items, now)  # RateLimited: nothing stored
        result.stored = True
        # Drift is judged on the newest heartbeat's declared version.
        newest = max(valid_items, key=lambda v: v.ts_ms)
        result.drift_detected = newest.config_version != result.expected_version
    for outcome in result.outcomes:  # counted once stored: a failed store counts nothing
        counter = _ACCEPTED if outcome.error is None else HEARTBEATS.labels(outcome.error.code)
        counter.inc()
    return result


def accept_heartbeat(node_id: uuid.UUID, body) -> dict | None:
    """The hot path's single heartbeat: judged and stored as `ingest` does, but only when it
    is accepted; its answer, or None (nothing stored or counted) for the view to handle,
    which calls `ingest` to say why. The node's cached state is not re-read here before a
    foreign probe id is refused: the view does that."""
    now = datetime.now(UTC)
    now_ms = to_ms(now)
    expected_version, probe_ids = node_state(node_id)
    valid, error = judge(body, node_id, probe_ids, now_ms, oldest_accepted_ms(now_ms))
    if error is not None:
        return None
    store_heartbeats(node_id, [valid], now)  # RateLimited: nothing stored
    _ACCEPTED.inc()
    return _answer(now, len(valid.results), expected_version,
                   valid.config_version != expected_version, valid.warnings)


def heartbeat_answer(result: IngestResult) -> dict:
    """The view's 200 answer of POST /heartbeat (HeartbeatAnswerSchema)."""
    outcome = result.outcomes[0]
    return _answer(datetime.now(UTC), outcome.accepted, result.expected_version,
                   result.drift_detected, outcome.warnings)


def _answer(now: datetime, accepted: int, expected_version: str, drift_detected: bool,
            warnings: list[dict[str, str]]) -> dict:
    """POST /heartbeat's 200 answer, from the view and from the hot path alike."""
    return {"status": "success", "message": "Heartbeat received", "timestamp": iso_utc(now),
            "accepted": accepted, "config_version": expected_version,
            "drift_detected": drift_detected, "warnings": warnings}
