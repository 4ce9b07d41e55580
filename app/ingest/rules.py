"""Validation of heartbeat items (SPEC §5), hand-written because it is the hot path.

Each check names the field and its error code; a heartbeat with one failing field is
answered with that field's code, several with ERR_VALIDATION (app.api.error_handlers).
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_RESULTS = 1000
MAX_MS = 60000.0
MAX_FUTURE_MS = 5 * 60 * 1000
SUMMARY_FIELDS = ("latency_ms", "packet_loss_rate", "jitter_ms")
OPTIONAL_MS_FIELDS = ("latency_median_ms", "latency_min_ms", "latency_max_ms", "latency_p95_ms")

CODES = {
    "node_id": "ERR_INVALID_NODE_ID",
    "timestamp": "ERR_INVALID_TIMESTAMP",
    "probe_id": "ERR_PROBE_NOT_FOUND",
    "results": "ERR_VALIDATION",
    **{name: "ERR_INVALID_METRICS" for name in (*SUMMARY_FIELDS, *OPTIONAL_MS_FIELDS,
                                                  "latency_variance")},
}


@dataclass
class ValidHeartbeat:
    node_id: uuid.UUID
    ts_ms: int
    summary: tuple[float, float, float]
    # (probe_id, ts_ms, latency, loss, jitter)
    results: list[tuple[str, int, float, float, float]]
    config_version: str | None
    agent_version: str | None
    metadata: dict


@dataclass
class Problems:
    fields: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, []).append(message)


def parse_timestamp(value, now_ms: int, oldest_ms: int) -> int | str:
    """Epoch ms, or the reason the value is not an acceptable timestamp."""
    if not isinstance(value, str):
        return "must be an ISO 8601 string"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"not an ISO 8601 timestamp: {value!r}"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    ts_ms = int(parsed.timestamp() * 1000)
    if ts_ms > now_ms + MAX_FUTURE_MS:
        return "more than 5 minutes in the future"
    if ts_ms < oldest_ms:
        return "older than the raw retention"
    return ts_ms


def _number(value, name: str, low: float, high: float, problems: Problems, prefix: str):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.add(prefix + name, "must be a number")
        return None
    if value < low or value > high:
        problems.add(prefix + name, f"must be {low:g}-{high:g}, got {value}")
        return None
    return float(value)


def _metrics(item: dict, problems: Problems, prefix: str, required: bool):
    values = []
    for name, high in (("latency_ms", MAX_MS), ("packet_loss_rate", 100.0), ("jitter_ms", MAX_MS)):
        if name not in item or item[name] is None:
            if required:
                problems.add(prefix + name, "is required")
            values.append(None)
            continue
        values.append(_number(item[name], name, 0.0, high, problems, prefix))
    for name in OPTIONAL_MS_FIELDS:
        if item.get(name) is not None:
            _number(item[name], name, 0.0, MAX_MS, problems, prefix)
    if item.get("latency_variance") is not None:
        _number(item["latency_variance"], "latency_variance", 0.0, math.inf, problems, prefix)
    return values


def _optional_str(body: dict, name: str, problems: Problems, max_len: int = 128) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        problems.add(name, f"must be a string of at most {max_len} characters")
        return None
    return value


def validate_heartbeat(body, node_id: uuid.UUID, now_ms: int,
                       oldest_ms: int) -> tuple[ValidHeartbeat | None, Problems]:
    """Shape and ranges of one heartbeat. Probe ownership is checked by the caller."""
    problems = Problems()
    if not isinstance(body, dict):
        problems.add("_schema", "heartbeat must be a JSON object")
        return None, problems
    if body.get("node_id") is None:
        problems.add("node_id", "is required")
    ts = body.get("timestamp")
    ts_ms = parse_timestamp(ts, now_ms, oldest_ms) if ts is not None else "is required"
    if isinstance(ts_ms, str):
        problems.add("timestamp", ts_ms)
    summary = _metrics(body, problems, "", required=True)
    config_version = _optional_str(body, "config_version", problems)
    agent_version = _optional_str(body, "agent_version", problems, 64)
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        problems.add("metadata", "must be an object")
        metadata = {}

    results: list[tuple[str, int, float, float, float]] = []
    raw_results = body.get("results")
    single_probe = body.get("probe_id")
    if raw_results is not None and not isinstance(raw_results, list):
        problems.add("results", "must be a list")
    elif raw_results and len(raw_results) > MAX_RESULTS:
        problems.add("results", f"at most {MAX_RESULTS} results, got {len(raw_results)}")
    elif raw_results:
        for i, item in enumerate(raw_results):
            prefix = f"results.{i}."
            if not isinstance(item, dict):
                problems.add(f"results.{i}", "must be an object")
                continue
            probe_id = _probe_id(item.get("probe_id"), problems, prefix)
            item_ts = ts_ms
            if item.get("timestamp") is not None:
                item_ts = parse_timestamp(item["timestamp"], now_ms, oldest_ms)
                if isinstance(item_ts, str):
                    problems.add(prefix + "timestamp", item_ts)
            values = _metrics(item, problems, prefix, required=True)
            if probe_id and isinstance(item_ts, int) and None not in values:
                results.append((probe_id, item_ts, *values))
    if single_probe is not None:
        probe_id = _probe_id(single_probe, problems, "")
        if probe_id and isinstance(ts_ms, int) and None not in summary:
            results.append((probe_id, ts_ms, *summary))

    if problems.fields:
        return None, problems
    return ValidHeartbeat(node_id, ts_ms, tuple(summary), results, config_version,
                          agent_version, metadata), problems


def _probe_id(value, problems: Problems, prefix: str) -> str | None:
    if value is None:
        problems.add(prefix + "probe_id", "is required")
        return None
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value  # what str(uuid.UUID(value)) would give, without building one
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        problems.add(prefix + "probe_id", f"not a probe id: {value!r}")
        return None


def check_node_id(body, token_node_id: uuid.UUID) -> tuple[str, str] | None:
    """(status-code pair) problem with the heartbeat's node_id, checked before the shape.

    Returns ("403", msg) for a well-formed id of another node, ("400", msg) for a malformed
    one; None when it is the token's node or missing (missing is a shape error).
    """
    if not isinstance(body, dict) or body.get("node_id") is None:
        return None
    if body["node_id"] == str(token_node_id):
        return None  # the canonical form: no need to parse it
    try:
        claimed = uuid.UUID(str(body["node_id"]))
    except ValueError:
        return "400", f"node_id is not a UUID: {body['node_id']!r}"
    if claimed != token_node_id:
        return "403", "This token belongs to another node"
    return None
