"""JSON answers through orjson keep the shape of Flask's own provider."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from app.json_provider import OrjsonProvider


@dataclass
class Pair:
    a: int
    b: str


def test_answers_decode_to_what_flasks_provider_answers():
    value = {"when": datetime(2026, 11, 29, 18, 0, tzinfo=UTC), "id": uuid.UUID(int=7),
             "amount": Decimal("1.50"), "pair": Pair(1, "x"), 3: "int key",
             "floats": [0.1, 12.34, None, 1e-7], "text": "zürich ✓", "huge": 2**70}
    ours, flasks = Flask("ours"), Flask("flasks")
    ours.json = OrjsonProvider(ours)
    for app in (ours, flasks):
        app.json.sort_keys = False
    assert isinstance(flasks.json, DefaultJSONProvider)
    with ours.app_context():
        answered = ours.json.response(value)
    with flasks.app_context():
        expected = flasks.json.response(value)
    assert answered.mimetype == expected.mimetype == "application/json"
    assert answered.get_data().endswith(b"\n")
    assert answered.get_json() == expected.get_json()
    assert answered.get_json()["when"] == "Sun, 29 Nov 2026 18:00:00 GMT"  # Flask's format
    assert ours.json.loads(ours.json.dumps(value)) == flasks.json.loads(flasks.json.dumps(value))
