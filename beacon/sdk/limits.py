"""Pulse's limits on what a heartbeat may say about its sender (SPEC §5), applied here.

Pulse cuts or drops metadata and versions that break these limits and still accepts the
points, but the Beacon and the SDK trim to the same limits before sending, so what Pulse
stores is what was sent. Standard library only (the SDK stays import-light).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

MAX_METADATA_KEYS = 32
MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 256
MAX_VERSION_CHARS = 128

# C0 controls (NUL included), DEL and C1 controls: Unicode category Cc.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def clean_text(value: str, max_chars: int) -> str:
    """``value`` without control characters, cut to ``max_chars``."""
    return _CONTROL.sub("", value)[:max_chars]


def clean_optional(value: Any, max_chars: int) -> str | None:
    """A string field: None stays None, anything else becomes cleaned text."""
    if value is None:
        return None
    return clean_text(str(value), max_chars)


def _scalar(value: Any) -> tuple[bool, Any]:
    if value is None or isinstance(value, bool | int):
        return True, value
    if isinstance(value, float):
        return math.isfinite(value), value  # NaN/inf are not JSON
    if isinstance(value, str):
        return True, clean_text(value, MAX_VALUE_CHARS)
    return False, None


def trim_metadata(metadata: Mapping[Any, Any] | None) -> dict[str, Any]:
    """At most 32 keys (the first ones) of scalar values; keys ≤ 64 and string values ≤ 256
    characters, control characters removed. Non-scalar values and keys that are empty once
    cleaned are dropped; of two keys equal once cut, the first is kept."""
    out: dict[str, Any] = {}
    for raw_key, raw_value in (metadata or {}).items():
        if len(out) >= MAX_METADATA_KEYS:
            break
        key = clean_text(str(raw_key), MAX_KEY_CHARS)
        ok, value = _scalar(raw_value)
        if not key or not ok or key in out:
            continue
        out[key] = value
    return out
