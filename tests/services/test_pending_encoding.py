"""The pending queue's text form (app/history/pending.py): what encode_points writes is what
decode_entry reads back, field for field, with or without the run's spread."""

from __future__ import annotations

import pytest

from app.history.live_cache import ERROR_CHARS, Point
from app.history.pending import PendingRow, decode_entry, encode_points

NODE = "5b0c3c1e-8d4f-4c43-9d3e-1f2a3b4c5d6e"
PROBE = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
NOW_MS = 1_769_776_496_000

POINTS = [
    Point(PROBE, NOW_MS, 12.34, 0.5, 0.07, 11.0, 12.0, 15.5, 19.99, 10, 10),  # complete
    Point(PROBE, NOW_MS + 1, 0.1 + 0.2, 33.333333333333336, 1e-05, 0.0, 60000.0, 1.5, 2.25,
          3, 2, "ERR_CONNECTION_TIMEOUT"),  # complete, with an error and long reprs
    Point(PROBE, NOW_MS + 2, None, 100.0, None, None, None, None, None, 3, 0,
          "ERR_CONNECTION_REFUSED"),  # nothing received
    Point(PROBE, NOW_MS + 3, 5.0, 0.0, 0.5),  # a summary's three numbers only
]


def per_field(p: Point) -> str:
    """The text form spelt out field by field."""
    values = ["" if v is None else repr(v) for v in p[2:11]]
    return ",".join([p.series, str(p.ts_ms), *values, ERROR_CHARS.get(p.error or "", "")])


@pytest.mark.parametrize("point", POINTS)
def test_each_point_is_written_field_by_field(point):
    assert encode_points([point]) == per_field(point).encode()


def test_points_are_separated_by_semicolons_and_read_back_exactly():
    raw = encode_points(POINTS)
    assert raw == ";".join(per_field(p) for p in POINTS).encode()
    assert decode_entry({b"n": NODE.encode(), b"p": raw}) == [
        PendingRow(NODE, *p) for p in POINTS]
