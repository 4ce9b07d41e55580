"""Operations endpoints: /healthz, /readyz and the local Swagger UI assets."""

from __future__ import annotations

import logging
import os

import flask_swagger_ui
from flask import Blueprint, jsonify, send_from_directory
from sqlalchemy import text

from app.extensions import db, get_redis

log = logging.getLogger(__name__)
ops = Blueprint("ops", __name__)
SWAGGER_DIST = os.path.join(os.path.dirname(flask_swagger_ui.__file__), "dist")


@ops.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@ops.get("/readyz")
def readyz():
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


@ops.get("/docs-assets/<path:filename>")
def swagger_assets(filename: str):
    """Swagger UI served from the installed package: /docs works without internet."""
    return send_from_directory(SWAGGER_DIST, filename, max_age=86400)
