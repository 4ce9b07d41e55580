"""/api/v1/beacon/* — called by Beacons with their node token.

Checks run in the order of SPEC §5: token (401) → node_id matches the token (403) →
body shape and ranges (400) → probe ownership (400).

The node's rate limit (429) comes first of all but the token: a heartbeat request that
stores something is counted in its write round trip, one that stores nothing (any error,
or a batch whose every item is refused) alone before its answer — over the limit, that
answer is the 429 (app.ingest.rate_limit).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from flask import jsonify, make_response, request
from flask.views import MethodView
from werkzeug.exceptions import HTTPException

from app.api.beacon.schemas import (
    BatchAnswerSchema,
    BeaconConfigSchema,
    BeaconProbeSchema,
    DeclaredProbesSchema,
    DeclareProbesSchema,
    HeartbeatAnswerSchema,
    HeartbeatBatchSchema,
    HeartbeatSchema,
    RegisteredSchema,
    RegisterSchema,
)
from app.api.common import Blueprint, load_json_body, parse_json_body, require_json_body
from app.api.security import bearer_token
from app.errors import ApiError
from app.ingest.fast_path import BACKEND_DOWN, RATE_REFUSED
from app.ingest.heartbeats import IngestResult, heartbeat_answer, ingest
from app.ingest.node_lookup import resolve_node_token
from app.ingest.rate_limit import RateLimited, count_request, refuse_known
from app.ingest.rules import check_node_id
from app.services import nodes as node_service
from app.services.beacon_config import beacon_config, declare_probes
from app.telemetry.metrics import HEARTBEATS

blp = Blueprint("beacon", __name__, url_prefix="/api/v1/beacon",
                description="Beacon registration, configuration and heartbeats")
MAX_BATCH = 500


def authenticated_node() -> uuid.UUID:
    token = bearer_token()
    node_id = resolve_node_token(token) if token else None
    if node_id is None:
        raise ApiError(401, "ERR_UNAUTHORIZED", "Missing or invalid node token",
                       headers={"WWW-Authenticate": "Bearer"})
    return node_id


def _json_body():
    require_json_body()
    return parse_json_body(request.get_data(cache=True))


def _counted(node_id: uuid.UUID, handle: Callable[[], IngestResult]) -> IngestResult:
    """handle() with the request counted once against the node's rate limit: by the write
    round trip when it stores something, else here, before the answer (which becomes the
    429 when the node is over its limit)."""
    refuse_known(str(node_id))  # refused a moment ago: 429 before reading the body
    try:
        result = handle()
    except RateLimited:
        raise
    except (ApiError, HTTPException):
        count_request(str(node_id))
        raise
    if not result.stored:
        count_request(str(node_id))
    return result


def _ownership_checked(body, node_id: uuid.UUID) -> None:
    problem = check_node_id(body, node_id)
    if problem is None:
        return
    status, message = problem
    code = "ERR_NODE_MISMATCH" if status == "403" else "ERR_INVALID_NODE_ID"
    HEARTBEATS.labels(outcome=code).inc()
    if status == "403":
        raise ApiError(403, code, message)
    raise ApiError(400, code, message, {"fields": {"node_id": [message]}})


@blp.route("/register", methods=["POST"])
@blp.doc(security=[])
@blp.arguments(RegisterSchema)
@blp.response(201, RegisteredSchema)
def register(data):
    """Register a new node with an enrollment token"""
    node, token = node_service.enroll_node(data["enroll_token"], data["name"], data["metadata"])
    return {"node_id": node.id, "token": token}


@blp.route("/config")
class BeaconConfig(MethodView):
    @blp.response(200, BeaconConfigSchema)
    @blp.alt_response(304, description="Not modified (If-None-Match)")
    def get(self):
        """The probes this Beacon runs; ETag is the config version"""
        node_id = authenticated_node()
        config = beacon_config(node_id)
        etag = config["config_version"]
        if request.if_none_match.contains_weak(etag):
            response = make_response("", 304)
            response.set_etag(etag)
            return response
        body = BeaconConfigSchema().dump(config)
        response = make_response(body, 200)
        response.set_etag(etag)
        return response


@blp.route("/probes", methods=["PUT"])
@blp.response(200, DeclaredProbesSchema)
def put_probes():
    """Declare the probes of the Beacon's local beacon.yaml"""
    node_id = authenticated_node()
    data = load_json_body(DeclareProbesSchema())
    result = declare_probes(node_id, data["probes"])
    return {"config_version": result["config_version"],
            "probes": BeaconProbeSchema(many=True).dump(result["probes"])}


@blp.route("/heartbeat", methods=["POST"])
@blp.doc(requestBody={"content": {"application/json": {"schema": HeartbeatSchema}}})
@blp.response(200, HeartbeatAnswerSchema)
def heartbeat():
    """Report a heartbeat: the node summary and probe results

    Accepted heartbeats are usually answered by the fast path (fast_path.py) before this
    view runs; this view answers the rest, errors included.
    """
    backend_down = request.environ.get(BACKEND_DOWN)
    if backend_down is not None:
        raise backend_down  # found by the fast path a moment ago: 503 at once
    refused = request.environ.get(RATE_REFUSED)
    if refused is not None:
        raise refused  # the fast path's write was refused by the rate limit: nothing stored
    node_id = authenticated_node()

    def handle() -> IngestResult:
        body = _json_body()
        _ownership_checked(body, node_id)
        result = ingest(node_id, [body])
        if result.outcomes[0].error is not None:
            raise result.outcomes[0].error
        return result

    # A Response skips the schema dump; HeartbeatAnswerSchema documents the answer and a
    # test checks that the two agree.
    return jsonify(heartbeat_answer(_counted(node_id, handle)))


@blp.route("/heartbeats", methods=["POST"])
@blp.doc(requestBody={"content": {"application/json": {"schema": HeartbeatBatchSchema}}})
@blp.response(200, BatchAnswerSchema)
def heartbeats():
    """Deliver spooled heartbeats (≤ 500), judged one by one"""
    node_id = authenticated_node()
    items: list = []
    mismatched: dict[int, ApiError] = {}

    def handle() -> IngestResult:
        body = _json_body()
        listed = body.get("heartbeats") if isinstance(body, dict) else None
        if not isinstance(listed, list):
            raise ApiError(400, "ERR_VALIDATION", "heartbeats: must be a list",
                           {"fields": {"heartbeats": ["must be a list"]}})
        if len(listed) > MAX_BATCH:
            raise ApiError(400, "ERR_VALIDATION", f"heartbeats: at most {MAX_BATCH} items",
                           {"fields": {"heartbeats": [f"at most {MAX_BATCH} items"]}})
        items.extend(listed)
        # A node_id of another node is judged per item, like every other problem.
        for index, item in enumerate(items):
            problem = check_node_id(item, node_id)
            if problem is not None:
                code = "ERR_NODE_MISMATCH" if problem[0] == "403" else "ERR_INVALID_NODE_ID"
                HEARTBEATS.labels(outcome=code).inc()
                mismatched[index] = ApiError(int(problem[0]), code, problem[1])
        return ingest(node_id, [item for i, item in enumerate(items) if i not in mismatched])

    result = _counted(node_id, handle)
    rejected, warnings, outcomes = [], [], iter(result.outcomes)
    for index in range(len(items)):
        outcome = None if index in mismatched else next(outcomes)
        error = mismatched.get(index) or outcome.error
        if error is not None:
            rejected.append({"index": index, "code": error.code, "message": error.message})
        else:
            warnings += ({"index": index, **w} for w in outcome.warnings)
    return jsonify({"accepted": result.accepted, "rejected": rejected, "warnings": warnings,
                    "config_version": result.expected_version,
                    "drift_detected": result.drift_detected})
