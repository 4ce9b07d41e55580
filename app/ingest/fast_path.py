"""The heartbeat hot path, served below Flask's request dispatch.

Every Beacon posts `POST /api/v1/beacon/heartbeat` once a minute, so this one request
decides how many Beacons an API process carries. Flask's dispatch (request and app
context objects, URL matching, hooks, flask-smorest's wrappers, the response object)
costs as much CPU as the ingest itself. This WSGI middleware serves the request when it
is well formed and accepted — the same services as the Flask view (token lookup, the
rate limit's in-process refusals, node_id check, then `accept_heartbeat`, whose write
round trip also counts the request against the node's rate limit), the same
answer, the same telemetry — and hands everything else, untouched, to the Flask view,
which produces every error (a refusal by the rate limit is passed on to it in the WSGI
environ: nothing was stored, and the request must not be counted again). So the fast
path never answers anything but a 200 that the view would also have given, and it can
be switched off (`PULSE_HEARTBEAT_FAST_PATH=0`) without changing a single answer.
"""

from __future__ import annotations

import io
import json
import logging
import time

import orjson
import redis
import sqlalchemy.exc
from flask import Flask
from werkzeug.wsgi import get_content_length

from app.ingest.heartbeats import accept_heartbeat
from app.ingest.node_lookup import resolve_node_token
from app.ingest.rate_limit import RateLimited, refuse_known
from app.ingest.rules import check_node_id
from app.telemetry.metrics import LATENCY, REQUESTS

log = logging.getLogger(__name__)
PATH = "/api/v1/beacon/heartbeat"
# Set in the WSGI environ when the node's rate limit refused the fast path's write (nothing
# stored, the refusal not counted); the view raises it again: 429.
RATE_REFUSED = "pulse.rate_limit_refused"
# Set when the fast path found Redis or the database down; the view raises it again.
BACKEND_DOWN = "pulse.backend_down"
BACKEND_ERRORS = (redis.ConnectionError, redis.TimeoutError, sqlalchemy.exc.OperationalError)
# A body read that timed out (gunicorn.conf.py's socket timeouts), and the WSGI environ key
# the fast path records it under for app.api.error_handlers.guard_body_reads.
BODY_STALLED = (TimeoutError, BlockingIOError)
BODY_STALLED_KEY = "pulse.body_stalled"
# parse_body: where orjson could parse differently from the standard library (which the
# view uses), the standard library parses. orjson reads an integer beyond 64 bits as a
# float: a body with a run of 19 digits goes there (found as 19 zeros once every digit is
# a zero: a regular expression took 17 µs, longer than orjson's parse). And orjson's
# nesting limit (1,024) is not Python's recursion limit: so does a body with many brackets.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19
ORJSON_MAX_BRACKETS = 200


class HeartbeatFastPath:
    """WSGI middleware in front of the Flask app's own `wsgi_app`."""

    def __init__(self, app: Flask, wsgi_app) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.max_body = int(app.config.get("MAX_CONTENT_LENGTH") or 0)
        self._latency = LATENCY.labels(PATH)
        self._ok = REQUESTS.labels("POST", PATH, "200")

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        answer = None
        try:
            answer = self._serve(environ)
        except BACKEND_ERRORS as exc:
            # Redis or the database is down: the view answers at once with its 503 instead
            # of going through the same timeouts and retries a second time.
            environ[BACKEND_DOWN] = exc
        except BODY_STALLED as exc:
            environ[BODY_STALLED_KEY] = exc  # nothing left to read: answered 408 below
        except Exception:
            log.exception("heartbeat fast path failed; the view answers")
        if answer is None:
            return self.wsgi_app(environ, start_response)
        payload = self.app.json.encode(answer) + b"\n"  # the bytes jsonify gives the view
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(payload)))])
        self._ok.inc()
        self._latency.observe(time.perf_counter() - started)
        return [payload]

    def _serve(self, environ) -> dict | None:
        """The view's answer when the heartbeat is accepted; None for the view to handle.
        The steps run in the view's order: token, known refusal, body, node_id, content,
        and the write with the rate limit's check."""
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        with self.app.app_context():
            node_id = resolve_node_token(token)
            if node_id is None:
                return None  # 401 from the view, which does not read the body either
            try:
                refuse_known(str(node_id))
            except RateLimited:
                return None  # refused a moment ago: the view answers 429 without the body
            raw = self._read_body(environ)
            if raw is None:
                return None
            try:
                body = parse_body(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return None
            if check_node_id(body, node_id) is not None:
                return None
            try:
                return accept_heartbeat(node_id, body)
            except RateLimited as refusal:
                environ[RATE_REFUSED] = refusal
                return None

    def _read_body(self, environ) -> bytes | None:
        """The JSON body, or None when the request is not a plain JSON POST within limits.
        Whatever was read is put back for the view."""
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type.partition(";")[0].strip().lower() != "application/json":
            return None
        if environ.get("HTTP_TRANSFER_ENCODING"):
            return None
        length = get_content_length(environ)  # parsed exactly as the view parses it
        if not length or (self.max_body and length > self.max_body):
            return None
        stream = environ["wsgi.input"]
        body = b""
        try:
            body = stream.read(length)
        finally:
            environ["wsgi.input"] = io.BytesIO(body)
        return body if len(body) == length else None


def parse_body(raw: bytes) -> object:
    """The body's JSON, as the view's json.loads reads it (app.api.common.parse_json_body),
    parsed by orjson (~4 times faster) when it is sure to give the same value. Where orjson
    refuses a body the standard library takes (NaN, a lone surrogate, a BOM, UTF-16, more
    than 64-bit integers) or could read it differently (see _LONG_NUMBER), the standard
    library parses it."""
    if (raw.count(b"{") + raw.count(b"[") <= ORJSON_MAX_BRACKETS
            and _LONG_NUMBER not in raw.translate(_DIGITS_TO_ZERO)):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def install(app: Flask) -> None:
    if app.config.get("PULSE_HEARTBEAT_FAST_PATH", True):
        app.wsgi_app = HeartbeatFastPath(app, app.wsgi_app)
