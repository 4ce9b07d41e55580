"""The one error family of the HTTP answers: every error is {"code", "message", "details"}.

The errors themselves (ApiError, validation_error) live in app.errors, where services and
the ingest path raise them without importing the API."""

from __future__ import annotations

import json
import logging

import marshmallow as ma
import redis
import sqlalchemy.exc
from flask import Flask, jsonify
from werkzeug.exceptions import ClientDisconnected, HTTPException

from app.errors import ApiError, validation_error
from app.extensions import db
from app.ingest.fast_path import BODY_STALLED, BODY_STALLED_KEY

log = logging.getLogger(__name__)

DEFAULT_CODES = {
    400: "ERR_BAD_REQUEST",
    401: "ERR_UNAUTHORIZED",
    403: "ERR_FORBIDDEN",
    404: "ERR_NOT_FOUND",
    405: "ERR_METHOD_NOT_ALLOWED",
    408: "ERR_REQUEST_TIMEOUT",
    409: "ERR_CONFLICT",
    413: "ERR_PAYLOAD_TOO_LARGE",
    415: "ERR_UNSUPPORTED_MEDIA_TYPE",
    422: "ERR_VALIDATION",
    429: "ERR_RATE_LIMITED",
    500: "ERR_INTERNAL",
    503: "ERR_UNAVAILABLE",
}


class ErrorSchema(ma.Schema):
    """The body of every error, for the OpenAPI document (flask-smorest's ERROR_SCHEMA)."""

    code = ma.fields.String(metadata={"description": "ERR_… code", "example": "ERR_INVALID_PORT"})
    message = ma.fields.String(metadata={"description": "Human-readable explanation"})
    details = ma.fields.Dict(metadata={
        "description": "More about the error; validation errors list "
                       "`fields: {field: [messages]}`"})


def error_response(status: int, code: str, message: str, details=None, headers=None):
    response = jsonify({"code": code, "message": message, "details": details or {}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _rollback_quietly() -> None:
    """Roll the session back for an error answer; a rollback that fails itself (database
    gone) must not turn the JSON answer into Flask's HTML error page."""
    try:
        db.session.rollback()
    except Exception:  # the answer matters more than why the rollback failed
        log.exception("Rollback after an error failed")


def guard_body_reads(wsgi_app):
    """WSGI middleware (below the heartbeat fast path) answering 408 for a request whose
    body stopped arriving while the fast path read it (gunicorn.conf.py's socket timeouts);
    the Flask views answer the same through handle_body_stalled."""

    def guarded(environ, start_response):
        if BODY_STALLED_KEY not in environ:
            return wsgi_app(environ, start_response)
        body = json.dumps({"code": "ERR_REQUEST_TIMEOUT",
                               "message": "The request body stopped arriving",
                           "details": {}}).encode()
        start_response("408 Request Timeout", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Connection", "close")])
        return [body]

    return guarded


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(err: ApiError):
        return error_response(err.status, err.code, err.message, err.details, err.headers)

    @app.errorhandler(HTTPException)
    def handle_http_exception(err: HTTPException):
        status = err.code or 500
        if isinstance(err, ClientDisconnected) and isinstance(err.__context__, BODY_STALLED):
            return handle_body_stalled(err.__context__)  # werkzeug's name for a read timeout
        data = getattr(err, "data", None) or {}
        if status == 422:
            # flask-smorest/webargs validation: we answer 400 with field codes.
            api_err = validation_error(data.get("messages", {}))
            return handle_api_error(api_err)
        message = data.get("message") or err.description or err.name
        headers = {}
        if status == 405 and err.get_response().headers.get("Allow"):
            headers["Allow"] = err.get_response().headers["Allow"]
        return error_response(status, DEFAULT_CODES.get(status, f"ERR_HTTP_{status}"),
                              message, {}, headers)

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    @app.errorhandler(sqlalchemy.exc.OperationalError)
    def handle_backend_down(err: Exception):
        # Not accepted (or not known to be): the client sends it again (Beacons spool and
        # deliver later); a heartbeat stored twice this way is written once to the database.
        log.error("backend unavailable: %s", err)
        _rollback_quietly()
        return error_response(503, "ERR_UNAVAILABLE", "A backend is unavailable, retry later",
                              headers={"Retry-After": "5"})

    @app.errorhandler(TimeoutError)
    @app.errorhandler(BlockingIOError)
    def handle_body_stalled(err: Exception):
        _rollback_quietly()
        return error_response(408, "ERR_REQUEST_TIMEOUT", "The request body stopped arriving",
                              headers={"Connection": "close"})

    @app.errorhandler(Exception)
    def handle_unexpected(err: Exception):
        log.exception("Unhandled error")
        _rollback_quietly()
        return error_response(500, "ERR_INTERNAL", "Internal server error")
