"""/api/v1/silences — operator+ writes, viewer reads (SPEC §11)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from app.alerts import silences as silence_service
from app.api.common import Blueprint
from app.api.security import require_role
from app.api.silences.schemas import (
    SilenceCreateSchema,
    SilenceListArgsSchema,
    SilenceListSchema,
    SilenceSchema,
)

blp = Blueprint("silences", __name__, url_prefix="/api/v1/silences",
                description="Maintenance windows: alerts recorded, nobody notified")


@blp.route("")
class SilenceCollection(MethodView):
    @require_role("viewer")
    @blp.arguments(SilenceListArgsSchema, location="query")
    @blp.response(200, SilenceListSchema)
    def get(self, args):
        """Current and future silences (?expired=true: all)"""
        return {"data": silence_service.list_silences(args["expired"])}

    @require_role("operator")
    @blp.arguments(SilenceCreateSchema)
    @blp.response(201, SilenceSchema)
    def post(self, data):
        """Silence alerts of a node, a probe and/or a rule for a time window"""
        # who made it: a user or an API token id (the audit log has the details)
        return silence_service.create_silence(data, g.principal.id)


@blp.route("/<silence_id>")
class SilenceItem(MethodView):
    @require_role("operator")
    @blp.response(204)
    def delete(self, silence_id):
        """End a silence now (remove it)"""
        silence_service.delete_silence(silence_id)
