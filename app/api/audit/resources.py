"""/api/v1/audit-log (admin): who changed what, newest first."""

from __future__ import annotations

from app.api.audit.schemas import AuditArgsSchema, AuditPageSchema
from app.api.common import Blueprint
from app.api.security import require_role
from app.services import audit

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="Audit trail")


@blp.route("/audit-log", methods=["GET"])
@require_role("admin")
@blp.arguments(AuditArgsSchema, location="query")
@blp.response(200, AuditPageSchema)
def audit_log(args):
    """Creates, updates, deletes, rotations, revocations and failed logins, newest first"""
    rows, pagination = audit.query(args["from_"], args["to"], args["actor"], args["action"],
                                   args["page"], args["per_page"])
    return {"data": rows, "pagination": pagination}
