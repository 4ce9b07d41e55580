"""Plain-text tables for the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


RESULT_HEADERS = (
    "PROBE",
    "SENT",
    "RECV",
    "LOSS%",
    "MIN",
    "AVG",
    "MEDIAN",
    "MAX",
    "P95",
    "JITTER",
    "ERROR",
)


def result_row(label: str, result: dict[str, Any]) -> list[Any]:
    received = result.get("received")
    avg = result.get("latency_ms") if received else None
    return [
        label,
        result.get("sent"),
        received,
        result.get("packet_loss_rate"),
        result.get("latency_min_ms"),
        avg,
        result.get("latency_median_ms"),
        result.get("latency_max_ms"),
        result.get("latency_p95_ms"),
        result.get("jitter_ms"),
        result.get("error"),
    ]
