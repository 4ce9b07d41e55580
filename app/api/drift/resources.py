"""/api/drift/* — heartbeats of Heartbeat SDK instances and expected config versions."""

from __future__ import annotations

import functools
import re

from flask import current_app
from flask.views import MethodView

from app.api.common import Blueprint
from app.api.drift.schemas import (
    DriftAnswerSchema,
    DriftHeartbeatSchema,
    ExpectedAnswerSchema,
    ExpectedSchema,
    InstanceArgsSchema,
    InstanceListSchema,
)
from app.api.security import current_principal, require_role
from app.errors import ApiError
from app.services import drift as drift_service

blp = Blueprint("drift", __name__, url_prefix="/api/drift", description="Config drift")
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"


def _check_names(app_name: str, profile: str) -> None:
    for label, value in (("app", app_name), ("profile", profile)):
        if not re.fullmatch(NAME, value):
            raise ApiError(400, "ERR_VALIDATION", f"{label}: letters, digits, . _ - only",
                           {"fields": {label: ["letters, digits, . _ - only (≤ 128)"]}})


def reporter_required(view):
    """An API token (or user) of role operator or above, or any node token; checked
    before the body is validated (401/403 before 400)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        principal = current_principal(allow_node=True)
        if principal.kind != "node" and not principal.has_role("operator"):
            raise ApiError(403, "ERR_FORBIDDEN", "Reporting drift needs operator or a node token")
        return view(*args, **kwargs)

    return wrapper


@blp.route("/heartbeat/<app_name>/<profile>")
class DriftHeartbeat(MethodView):
    @reporter_required
    @blp.arguments(DriftHeartbeatSchema)
    @blp.response(200, DriftAnswerSchema)
    @blp.alt_response(429, description="The app/profile holds PULSE_DRIFT_MAX_INSTANCES "
                                       "instances already")
    def post(self, data, app_name, profile):
        """An SDK instance reports its config version; the answer says if it drifted"""
        _check_names(app_name, profile)
        return drift_service.record_heartbeat(
            app_name, profile, data, current_app.config["PULSE_DRIFT_MAX_INSTANCES"])



@blp.route("/expected/<app_name>/<profile>")
class DriftExpected(MethodView):
    @require_role("operator")
    @blp.arguments(ExpectedSchema)
    @blp.response(200, ExpectedAnswerSchema)
    def put(self, data, app_name, profile):
        """Set the config version every instance of app/profile should run"""
        _check_names(app_name, profile)
        row = drift_service.set_expected(app_name, profile, data["expected_version"])
        return {"app": row.app, "profile": row.profile, "expected_version": row.expected_version}

    @require_role("viewer")
    @blp.response(200, ExpectedAnswerSchema)
    def get(self, app_name, profile):
        """The config version every instance of app/profile should run"""
        _check_names(app_name, profile)
        row = drift_service.get_expected(app_name, profile)
        return {"app": row.app, "profile": row.profile, "expected_version": row.expected_version}

    @require_role("operator")
    @blp.response(204)
    def delete(self, app_name, profile):
        """Forget the expected version (instances are no longer judged drifted)"""
        _check_names(app_name, profile)
        drift_service.delete_expected(app_name, profile)


@blp.route("/instances")
class DriftInstances(MethodView):
    @require_role("viewer")
    @blp.arguments(InstanceArgsSchema, location="query")
    @blp.response(200, InstanceListSchema)
    def get(self, args):
        """Instances with drift_detected and stale"""
        stale = current_app.config["PULSE_DRIFT_STALE_SECONDS"]
        return {"data": drift_service.list_instances(args["app"], args["profile"], stale)}


@blp.route("/instances/<app_name>/<profile>/<instance_id>", methods=["DELETE"])
@require_role("operator")
@blp.response(204)
def delete_instance(app_name, profile, instance_id):
    """Forget one SDK instance (it reappears if it reports again)"""
    _check_names(app_name, profile)
    drift_service.delete_instance(app_name, profile, instance_id)
