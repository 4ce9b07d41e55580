"""Unrestricted resource consumption (OWASP API4): every free-form field on the management
endpoints is bounded with its own code, SDK instances are capped and forgotten, and
oversized or stalled bodies are refused."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from app.extensions import db
from app.models import DriftInstance
from app.services.drift import forget_silent_instances
from tests.support.api import assert_error, bearer

NODES = "/api/v1/nodes"


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"name": "n", "labels": {f"k{i}": "v" for i in range(5000)}}, "ERR_INVALID_LABELS",
     "labels"),
    ({"name": "n", "labels": {f"k{i}": "v" for i in range(65)}}, "ERR_INVALID_LABELS", "labels"),
    ({"name": "n", "labels": {"k": "v" * 1024}}, "ERR_INVALID_LABELS", "labels"),
    ({"name": "n", "labels": {"k" * 65: "v"}}, "ERR_INVALID_LABELS", "labels"),
    ({"name": "n", "labels": {"": "v"}}, "ERR_INVALID_LABELS", "labels"),
    ({"name": "n", "labels": {"k": {"nested": "v"}}}, "ERR_INVALID_LABELS", "labels"),
    ({"name": "n" * 256}, "ERR_INVALID_NAME", "name"),
    ({"name": "n", "region": "r" * 65}, "ERR_INVALID_REGION", "region"),
])
def test_node_fields_are_bounded(client, operator, body, code, field):
    assert_error(client.post(NODES, json=body, headers=operator.headers), 400, code, field)


def test_the_bounds_themselves_are_accepted(client, operator):
    labels = {f"k{i:02d}" + "x" * 60: "v" * 256 for i in range(64)}
    response = client.post(NODES, json={"name": "n" * 255, "region": "r" * 64,
                                        "labels": labels}, headers=operator.headers)
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("metadata", [
    {f"k{i}": "v" for i in range(33)}, {"k": "v" * 257}, {"k": {"nested": 1}}, {"k": [1]},
    {"k" * 65: "v"}, {"k": 2**70},
])
def test_drift_metadata_is_bounded(client, node, metadata):
    response = client.post("/api/drift/heartbeat/app/prod", headers=bearer(node["token"]),
                           json={"instance_id": "i", "config_version": "v",
                                 "metadata": metadata})
    assert_error(response, 400, "ERR_INVALID_METADATA", "metadata")


def test_drift_instances_are_capped_per_app_and_profile(app_factory, operator):
    app = app_factory(PULSE_DRIFT_MAX_INSTANCES="5")
    client = app.test_client()
    node = client.post(NODES, json={"name": "sdk"}, headers=operator.headers).get_json()
    headers = bearer(node["token"])

    def beat(instance, profile="prod"):
        return client.post(f"/api/drift/heartbeat/app/{profile}", headers=headers,
                           json={"instance_id": instance, "config_version": "v"})

    assert [beat(f"i{i}").status_code for i in range(5)] == [200] * 5
    refused = beat("i-fresh")
    assert_error(refused, 429, "ERR_TOO_MANY_INSTANCES")
    assert int(refused.headers["Retry-After"]) > 0
    assert beat("i0").status_code == 200  # a known instance keeps reporting
    assert beat("i-fresh", profile="staging").status_code == 200  # per app/profile
    with app.app_context():
        assert db.session.query(DriftInstance).filter_by(profile="prod").count() == 5


def test_silent_instances_are_forgotten(app, client, node):
    for name in ("old", "new"):
        client.post("/api/drift/heartbeat/app/prod", headers=bearer(node["token"]),
                    json={"instance_id": name, "config_version": "v"})
    with app.app_context():
        old = db.session.query(DriftInstance).filter_by(instance_id="old").one()
        old.last_seen_at = datetime.now(UTC) - timedelta(hours=25)
        db.session.commit()
        assert app.config["PULSE_DRIFT_FORGET_HOURS"] == 24
        assert forget_silent_instances(24) == 1
        assert [r.instance_id for r in db.session.query(DriftInstance)] == ["new"]


def test_the_forget_task_is_scheduled_for_beat_and_the_embedded_scheduler():
    import celeryconfig
    from worker.embedded import scheduled_jobs

    names = {entry["task"] for entry in celeryconfig.beat_schedule.values()}
    assert "worker.tasks.forget_drift_instances" in names
    assert "worker.tasks.forget_drift_instances" in {name for name, _, _ in scheduled_jobs()}


def test_oversized_bodies_are_413_before_anything_is_parsed(app_factory, operator):
    client = app_factory(PULSE_MAX_BODY_BYTES="2048").test_client()
    big = b'{"name": "' + b"x" * 5000 + b'"}'
    for path, headers in (("/api/v1/nodes", operator.headers), ("/api/v1/auth/login", {}),
                          ("/api/v1/beacon/heartbeat", bearer("pbn_garbage"))):
        response = client.post(path, data=big, headers={**headers,
                                                         "Content-Type": "application/json"})
        assert response.status_code in (401, 413), (path, response.status_code)
        if path != "/api/v1/beacon/heartbeat":  # a bad token is refused before the body
            assert_error(response, 413, "ERR_PAYLOAD_TOO_LARGE")


class StallingBody(io.RawIOBase):
    """gunicorn's body stream when the sender stops: a read waits for the bytes asked for
    and the socket timeout (SO_RCVTIMEO, gunicorn.conf.py) ends it with EAGAIN."""

    def readable(self):
        return True

    def readinto(self, buffer):
        raise BlockingIOError(11, "Resource temporarily unavailable")


@pytest.mark.parametrize("fast_path", ["1", "0"])
def test_a_stalled_body_is_408_on_the_view_and_the_fast_path(app_factory, fast_path,
                                                            operator):
    app = app_factory(PULSE_HEARTBEAT_FAST_PATH=fast_path)
    client = app.test_client()
    node = client.post(NODES, json={"name": "stall"}, headers=operator.headers).get_json()
    for path, headers in (("/api/v1/beacon/heartbeat", bearer(node["token"])),
                          ("/api/v1/auth/login", {})):
        environ = EnvironBuilder(path=path, method="POST", data=b"x" * 100, headers={
            **headers, "Content-Type": "application/json"}).get_environ()
        environ["wsgi.input"] = StallingBody()
        body, status, response_headers = run_wsgi_app(app, environ, buffered=True)
        response = app.response_class(b"".join(body), status, response_headers)
        assert_error(response, 408, "ERR_REQUEST_TIMEOUT")
        assert response.headers["Connection"] == "close"
