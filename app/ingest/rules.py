"""The rules of a heartbeat (SPEC §5), hand-written because they run on the hot path.

`NUMBER_RULES` is the one statement of every numeric field's range: the validator below
applies it and the OpenAPI schemas (app/api/beacon/schemas.py) are built from it, and a
property test holds the two against each other. A heartbeat with one failing field is
answered with that field's code, several with ERR_VALIDATION (app.errors).

Metadata never costs the points: metadata and versions over the limits, or with control
characters, are cut or dropped and reported as warnings, never refused (a Beacon treats a
400 as final and would drop a spooled heartbeat for a bad hostname).
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from app.history.live_cache import ERROR_CHARS

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_RESULTS = 1000
MAX_MS = 60000.0
MAX_FUTURE_MS = 5 * 60 * 1000
MAX_SAMPLES = 100_000
METADATA_MAX_KEYS = 32
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 256
VERSION_MAX = 128
UNKNOWN_ERROR = "ERR_SOCKET"  # SPEC §5: an error code Pulse does not know


class NumberRule(NamedTuple):
    low: float
    high: float
    required: bool = False
    integer: bool = False


# Every numeric field of a heartbeat and of each result. null is allowed wherever a field
# is not required, and for latency_ms and jitter_ms (a run that received nothing).
NUMBER_RULES: dict[str, NumberRule] = {
    "latency_ms": NumberRule(0.0, MAX_MS, required=True),
    "packet_loss_rate": NumberRule(0.0, 100.0, required=True),
    "jitter_ms": NumberRule(0.0, MAX_MS, required=True),
    "latency_min_ms": NumberRule(0.0, MAX_MS),
    "latency_median_ms": NumberRule(0.0, MAX_MS),
    "latency_p95_ms": NumberRule(0.0, MAX_MS),
    "latency_max_ms": NumberRule(0.0, MAX_MS),
    "latency_variance": NumberRule(0.0, math.inf),
    "sent": NumberRule(0, MAX_SAMPLES, integer=True),
    "received": NumberRule(0, MAX_SAMPLES, integer=True),
}
NULLABLE_REQUIRED = ("latency_ms", "jitter_ms")
SUMMARY_FIELDS = ("latency_ms", "packet_loss_rate", "jitter_ms")
SPREAD_FIELDS = ("latency_min_ms", "latency_median_ms", "latency_p95_ms", "latency_max_ms")
RESULT_NUMBERS = (*SUMMARY_FIELDS, *SPREAD_FIELDS, "sent", "received")

CODES = {
    "node_id": "ERR_INVALID_NODE_ID",
    "timestamp": "ERR_INVALID_TIMESTAMP",
    "probe_id": "ERR_PROBE_NOT_FOUND",
    "results": "ERR_VALIDATION",
    **{name: "ERR_INVALID_METRICS" for name in NUMBER_RULES},
}

# (probe_id, ts_ms, latency, loss, jitter, min, median, p95, max, sent, received, error)
Result = tuple


@dataclass
class ValidHeartbeat:
    node_id: uuid.UUID
    ts_ms: int
    # The node summary; None for a liveness-only heartbeat (no results, no probe_id).
    summary: tuple[float | None, float, float | None] | None
    results: list[Result]
    config_version: str | None
    agent_version: str | None
    metadata: dict
    warnings: list[dict[str, str]] = field(default_factory=list)


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
        return f"not an ISO 8601 timestamp: {value[:64]!r}"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    ts_ms = int(parsed.timestamp() * 1000)
    if ts_ms > now_ms + MAX_FUTURE_MS:
        return "more than 5 minutes in the future"
    if ts_ms < oldest_ms:
        return "older than the raw retention"
    return ts_ms


def _number(item: dict, name: str, problems: Problems, prefix: str):
    """The field's value (None when absent or null), or None with a problem recorded."""
    rule = NUMBER_RULES[name]
    value = item.get(name)
    kind = type(value)
    # The common case first (a finite number in range), in a few comparisons: it runs for
    # every field of every result of every heartbeat. NaN and infinities fail `<`.
    if (kind is float or kind is int) and rule.low <= value < math.inf and value <= rule.high:
        if not rule.integer:
            return float(value)
        if kind is int or value.is_integer():
            return int(value)
    if value is None:
        if rule.required and (name not in item or name not in NULLABLE_REQUIRED):
            problems.add(prefix + name, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.add(prefix + name, "must be a number")
        return None
    if rule.integer and not (isinstance(value, int) or value.is_integer()):
        problems.add(prefix + name, "must be a whole number")
        return None
    if value < rule.low or value > rule.high:
        problems.add(prefix + name, f"must be {rule.low:g}-{rule.high:g}, got {value}")
        return None
    return int(value) if rule.integer else float(value)


# (name, low, high, whole) of the fields _measured reads, in its order: the loop there
# takes a value in range of the field's own type without calling _number.
_SUMMARY_ROWS = tuple((n, *NUMBER_RULES[n][:2], NUMBER_RULES[n].integer) for n in SUMMARY_FIELDS)
_RESULT_ROWS = tuple((n, *NUMBER_RULES[n][:2], NUMBER_RULES[n].integer) for n in RESULT_NUMBERS)
assert all(math.isfinite(row[2]) for row in _RESULT_ROWS)  # `value <= high` excludes inf
assert NUMBER_RULES["latency_variance"][:2] == (0.0, math.inf)  # _measured's own test


def _measured(item: dict, problems: Problems, prefix: str, spread: bool) -> tuple | None:
    """(latency, loss, jitter[, min, median, p95, max, sent, received]) of a run or summary,
    latency figures nulled when nothing was received; None when a field failed."""
    before = len(problems.fields)
    values = []
    get = item.get
    for name, low, high, whole in (_RESULT_ROWS if spread else _SUMMARY_ROWS):
        value = get(name)
        # _number's first case for a float of a float field or an int of a whole one (so
        # float(value) or int(value) would be value itself): it runs for every field of
        # every result. NaN fails `<=`; a bool's type is not int.
        if type(value) is (int if whole else float) and low <= value <= high:
            values.append(value)
        else:
            values.append(_number(item, name, problems, prefix))
    if "latency_variance" in item:
        variance = get("latency_variance")
        if not (type(variance) is float and 0.0 <= variance < math.inf):  # else _number's too
            _number(item, "latency_variance", problems, prefix)
    if len(problems.fields) != before:
        return None
    loss = values[1]
    received = values[-1] if spread else None
    if loss is None:
        return None
    if loss >= 100.0 or received == 0:
        # A dead run has no latency, whatever number was sent (older agents send 0).
        values = [None, loss, None, *(None for _ in SPREAD_FIELDS), *values[-2:]] \
            if spread else [None, loss, None]
    return tuple(values)


def error_code(value) -> str | None:
    """A run's error as one of SPEC §7's codes (unknown -> ERR_SOCKET), or None."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) and value in ERROR_CHARS else UNKNOWN_ERROR


def _clean_text(value: str, limit: int) -> tuple[str, str | None]:
    """The text without control characters, cut to `limit`; and why it changed, if it did."""
    cleaned = _CONTROL.sub("", value)
    why = "control characters removed" if cleaned != value else None
    if len(cleaned) > limit:
        cleaned = cleaned[:limit]
        why = f"cut to {limit} characters"
    return cleaned, why


def _version(body: dict, name: str, warnings: list[dict]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        warnings.append({"field": name, "message": "not a string: dropped"})
        return None
    cleaned, why = _clean_text(value, VERSION_MAX)
    if why:
        warnings.append({"field": name, "message": why})
    return cleaned


def clean_metadata(metadata, warnings: list[dict]) -> dict:
    """Metadata within SPEC §5's limits: at most 32 keys of scalar values, keys <= 64 and
    values <= 256 characters, no control character; what breaks them is cut or dropped."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        warnings.append({"field": "metadata", "message": "not an object: dropped"})
        return {}
    cleaned: dict = {}
    for key, value in metadata.items():
        if len(cleaned) == METADATA_MAX_KEYS:
            warnings.append({"field": "metadata",
                             "message": f"more than {METADATA_MAX_KEYS} keys: the rest dropped"})
            break
        key_text, key_why = _clean_text(str(key), METADATA_MAX_KEY)
        if not key_text:
            warnings.append({"field": "metadata", "message": "an empty key: dropped"})
            continue
        name = f"metadata.{key_text}"
        if key_why:
            warnings.append({"field": name, "message": f"key {key_why}"})
        if isinstance(value, str):
            value, why = _clean_text(value, METADATA_MAX_VALUE)
            if why:
                warnings.append({"field": name, "message": why})
        elif value is not None and not isinstance(value, bool | int | float):
            warnings.append({"field": name, "message": "not a scalar: dropped"})
            continue
        elif isinstance(value, float) and not math.isfinite(value):
            warnings.append({"field": name, "message": "not a finite number: dropped"})
            continue
        cleaned[key_text] = value
    return cleaned


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
    summary = _measured(body, problems, "", spread=False)
    warnings: list[dict] = []
    config_version = _version(body, "config_version", warnings)
    agent_version = _version(body, "agent_version", warnings)
    metadata = clean_metadata(body.get("metadata"), warnings)

    results: list[Result] = []
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
            values = _measured(item, problems, prefix, spread=True)
            if probe_id and isinstance(item_ts, int) and values is not None:
                results.append((probe_id, item_ts, *values, error_code(item.get("error"))))
    if single_probe is not None:
        probe_id = _probe_id(single_probe, problems, "")
        if probe_id and isinstance(ts_ms, int) and summary is not None:
            results.append((probe_id, ts_ms, *summary))

    if problems.fields:
        return None, problems
    # No results and no probe_id: liveness only (SPEC §7), no summary point.
    has_points = bool(raw_results) or single_probe is not None
    return ValidHeartbeat(node_id, ts_ms, summary if has_points else None, results,
                          config_version, agent_version, metadata, warnings), problems


def _probe_id(value, problems: Problems, prefix: str) -> str | None:
    if value is None:
        problems.add(prefix + "probe_id", "is required")
        return None
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value  # what str(uuid.UUID(value)) would give, without building one
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        problems.add(prefix + "probe_id", f"not a probe id: {str(value)[:64]!r}")
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
        return "400", f"node_id is not a UUID: {str(body['node_id'])[:64]!r}"
    if claimed != token_node_id:
        return "403", "This token belongs to another node"
    return None
