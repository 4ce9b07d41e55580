"""The heartbeat's documented schema and the hot path's hand-written rules agree (issue 9:
one source of truth per rule). The OpenAPI schemas are built from `NUMBER_RULES`; this
property test holds the two validators against each other on generated heartbeats."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.beacon.schemas import HeartbeatSchema
from app.ingest.rules import NUMBER_RULES, validate_heartbeat

NODE = uuid.UUID("5b0c3c1e-8d4f-4c43-9d3e-1f2a3b4c5d6e")
PROBE = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
MISSING = object()

# Values around every rule's edges, and the wrong types a client sends.
values = st.one_of(
    st.sampled_from([0, 0.0, -0.01, -1, 1, 10.0, 10.5, 99.99, 100, 100.01, 60000, 60000.01,
                     100000, 100001, 1e9]),
    st.floats(min_value=-10, max_value=70000, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-5, max_value=200000),
    st.sampled_from([None, True, False, "12.3", "", [], {}, MISSING]),
)


def item(fields: dict) -> dict:
    return {k: v for k, v in fields.items() if v is not MISSING}


@settings(max_examples=400, deadline=None)
@given(summary=st.fixed_dictionaries({k: values for k in ("latency_ms", "packet_loss_rate",
                                                          "jitter_ms")}),
       result=st.fixed_dictionaries({k: values for k in NUMBER_RULES}))
def test_schema_and_rules_accept_and_refuse_the_same_heartbeats(summary, result):
    body = {"node_id": str(NODE), "timestamp": "2026-11-29T11:59:00Z", **item(summary),
            "results": [{"probe_id": PROBE, **item(result)}]}
    valid, problems = validate_heartbeat(body, NODE, NOW_MS, NOW_MS - 86_400_000)
    schema_errors = HeartbeatSchema().validate(body)
    assert (valid is not None) == (not schema_errors), (problems.fields, schema_errors)
    if valid is None:
        flat = set(problems.fields)
        documented = {name for name in schema_errors if name != "results"} | {
            f"results.{i}.{name}" for i, errors in schema_errors.get("results", {}).items()
            for name in errors}
        assert flat == documented


@settings(max_examples=400, deadline=None)
@given(result=st.fixed_dictionaries({k: values for k in NUMBER_RULES}))
def test_measured_reads_each_value_as_number_reads_it(result):
    """_measured takes the common values without calling _number: the same values (and
    types) and the same problems as calling it for every field."""
    from app.ingest.rules import RESULT_NUMBERS, SUMMARY_FIELDS, Problems, _measured, _number

    body = item(result)
    for names, spread in ((RESULT_NUMBERS, True), (SUMMARY_FIELDS, False)):
        fast, slow = Problems(), Problems()
        measured = _measured(body, fast, "x.", spread=spread)
        expected = [_number(body, name, slow, "x.") for name in names]
        if "latency_variance" in body:
            _number(body, "latency_variance", slow, "x.")
        assert fast.fields == slow.fields
        assert (measured is None) == (bool(slow.fields) or expected[1] is None)
        for got, want in zip(measured or (), expected, strict=False):
            if got is not None:  # (a dead run's latency figures are nulled)
                assert (type(got), got) == (type(want), want)
