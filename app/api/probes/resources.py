"""/api/v1/probes — admin and operator only (viewers get 403, as the seed)."""

from __future__ import annotations

from flask import jsonify
from flask.views import MethodView

from app.api.common import Blueprint
from app.api.probes.schemas import (
    ConfirmArgsSchema,
    ProbeCreateSchema,
    ProbeListArgsSchema,
    ProbeListSchema,
    ProbePatchSchema,
    ProbeSchema,
    ProbeUpdateSchema,
    probe_json,
)
from app.api.security import require_role
from app.errors import ApiError
from app.services import probes as probe_service

blp = Blueprint("probes", __name__, url_prefix="/api/v1/probes", description="Probe configuration")


@blp.route("")
class ProbeCollection(MethodView):
    @require_role("operator")
    @blp.arguments(ProbeListArgsSchema, location="query")
    @blp.response(200, ProbeListSchema)
    def get(self, args):
        """List probes, filtered by node_id and type"""
        rows, pagination = probe_service.list_probes(
            args.get("node_id"), args.get("type"), args["page"], args["per_page"]
        )
        # A Response passes flask-smorest's dump untouched; the schema still documents it.
        return jsonify({"data": [probe_json(p) for p in rows], "pagination": pagination})

    @require_role("operator")
    @blp.arguments(ProbeCreateSchema)
    @blp.response(201, ProbeSchema)
    def post(self, data):
        """Create a probe"""
        return probe_service.create_probe(data)


@blp.route("/<probe_id>")
class ProbeItem(MethodView):
    @require_role("operator")
    @blp.response(200, ProbeSchema)
    def get(self, probe_id):
        """Get a probe"""
        return probe_service.get_probe(probe_id)

    @require_role("operator")
    @blp.arguments(ProbeUpdateSchema)
    @blp.response(200, ProbeSchema)
    def put(self, data, probe_id):
        """Replace a probe's settings"""
        probe = probe_service.get_probe(probe_id)
        return probe_service.update_probe(probe, data)

    @require_role("operator")
    @blp.arguments(ProbePatchSchema)
    @blp.response(200, ProbeSchema)
    def patch(self, data, probe_id):
        """Change some of a probe's settings"""
        probe = probe_service.get_probe(probe_id)
        return probe_service.update_probe(probe, data)

    @require_role("operator")
    @blp.arguments(ConfirmArgsSchema, location="query")
    @blp.response(204)
    def delete(self, args, probe_id):
        """Delete a probe (needs ?confirm=true)"""
        probe = probe_service.get_probe(probe_id)
        if not args["confirm"]:
            raise ApiError(400, "ERR_CONFIRMATION_REQUIRED",
                           "Deleting a probe needs ?confirm=true")
        probe_service.delete_probe(probe)
