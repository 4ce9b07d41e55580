"""Points are dumped without marshmallow's per-field pass, to the same answer and document."""

from __future__ import annotations

from decimal import Decimal

import marshmallow as ma
from marshmallow import fields

from app.api.metrics.schemas import MetricsSchema, PointList, PointSchema

POINTS = [
    {"ts_ms": 1_764_400_000_123, "latency_ms": 12.34, "packet_loss_rate": 0.0,
     "jitter_ms": 0.5, "latency_min_ms": 10.0, "latency_median_ms": 12.0,
     "latency_p95_ms": 15.5, "latency_max_ms": 17.0, "sent": 10, "received": 10,
     "error": None},
    {"ts_ms": 1_764_400_060_000, "latency_ms": None, "packet_loss_rate": 100.0,
     "jitter_ms": None, "latency_min_ms": None, "latency_median_ms": None,
     "latency_p95_ms": None, "latency_max_ms": None, "sent": 10, "received": 0,
     "error": "T"},
    {"ts_ms": 1_764_403_200_000, "latency_ms": 20, "packet_loss_rate": Decimal("2.5"),
     "jitter_ms": 1, "latency_min_ms": 15.0, "latency_median_ms": 19.5,
     "latency_p95_ms": 25.0, "latency_max_ms": 40.0, "jitter_max_ms": 2.0,
     "packet_loss_max": 20.0, "sample_count": 60.0, "sent": None, "received": None},
]


class SchemaPassed(ma.Schema):
    points = fields.List(fields.Nested(PointSchema))


def test_points_dump_as_the_schema_does():
    ours = PointList()._serialize(POINTS, "points", None)
    assert ours == SchemaPassed().dump({"points": POINTS})["points"]
    assert [type(p["packet_loss_rate"]) for p in ours] == [float, float, float]
    assert ours[2]["sample_count"] == 60 and type(ours[2]["sample_count"]) is int
    assert "jitter_max_ms" not in ours[0]  # keys the point does not carry stay out


def test_openapi_documents_each_point(app):
    spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    points = spec["components"]["schemas"]["Metrics"]["properties"]["points"]
    assert points["type"] == "array" and points["items"]["$ref"].endswith("/Point")
    assert MetricsSchema().fields["points"].inner.nested is PointSchema
