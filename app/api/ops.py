"""Operations endpoints: /healthz, /readyz, /metrics (in the OpenAPI document too) and the
local Swagger UI assets."""

from __future__ import annotations

import logging
import os

import flask_swagger_ui
import marshmallow as ma
from flask import Blueprint as FlaskBlueprint
from flask import Response, jsonify, send_from_directory
from sqlalchemy import text

from app.api.common import Blueprint
from app.extensions import db, get_redis
from app.telemetry import metrics_text

log = logging.getLogger(__name__)
ops = Blueprint("ops", __name__, description="Health, readiness and Prometheus metrics")
assets = FlaskBlueprint("docs_assets", __name__)
SWAGGER_DIST = os.path.join(os.path.dirname(flask_swagger_ui.__file__), "dist")


class HealthSchema(ma.Schema):
    status = ma.fields.String()


class ReadySchema(ma.Schema):
    status = ma.fields.String()
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


NO_AUTH = {"security": []}


@ops.route("/healthz", methods=["GET"])
@ops.doc(**NO_AUTH)
@ops.response(200, HealthSchema)
def healthz():
    """The process is up"""
    return jsonify({"status": "ok"})


@ops.route("/readyz", methods=["GET"])
@ops.doc(**NO_AUTH)
@ops.response(200, ReadySchema)
@ops.alt_response(503, description="The database or Redis is unreachable")
def readyz():
    """The database and Redis are reachable"""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready"
        db.session.rollback()
        log.warning("readyz: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    try:
        get_redis().client.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        log.warning("readyz: redis unreachable: %s", exc)
        checks["redis"] = "unreachable"
    if all(v == "ok" for v in checks.values()):
        return jsonify({"status": "ready", "checks": checks})
    body = {"code": "ERR_UNAVAILABLE", "message": "Not ready", "details": {"checks": checks}}
    return jsonify(body), 503


@ops.route("/metrics", methods=["GET"])
@ops.doc(responses={"200": {"description": "Prometheus text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}}}},
         **NO_AUTH)
def metrics():
    """Prometheus metrics: requests, heartbeats, pending points, flush figures"""
    body, content_type = metrics_text(get_redis())
    return Response(body, content_type=content_type)


@assets.get("/docs-assets/<path:filename>")
def swagger_assets(filename: str):
    """Swagger UI served from the installed package: /docs works without internet."""
    return send_from_directory(SWAGGER_DIST, filename, max_age=86400)
