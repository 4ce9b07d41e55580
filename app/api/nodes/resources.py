"""/api/v1/nodes and /api/v1/enrollment-tokens."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import g
from flask.views import MethodView

from app.api.common import Blueprint
from app.api.nodes.schemas import (
    EnrollmentCreateSchema,
    EnrollmentTokenListSchema,
    EnrollmentTokenSchema,
    NodeCreateSchema,
    NodeListArgsSchema,
    NodeListSchema,
    NodeSchema,
    NodeUpdateSchema,
    NodeWithTokenSchema,
    TokenSchema,
)
from app.api.probes.schemas import ConfirmArgsSchema
from app.api.security import require_role
from app.services import nodes as node_service
from app.services.presence import node_views

blp = Blueprint("nodes", __name__, url_prefix="/api/v1", description="Nodes and enrollment")


@blp.route("/nodes")
class NodeCollection(MethodView):
    @require_role("viewer")
    @blp.arguments(NodeListArgsSchema, location="query")
    @blp.response(200, NodeListSchema)
    def get(self, args):
        """List nodes with status and uptime"""
        rows, pagination = node_service.list_nodes(args["page"], args["per_page"])
        return {"data": node_views(rows), "pagination": pagination}

    @require_role("operator")
    @blp.arguments(NodeCreateSchema)
    @blp.response(201, NodeWithTokenSchema)
    def post(self, data):
        """Create a node; its token is in this answer only"""
        node, token = node_service.create_node(data["name"], data["region"], data["labels"])
        view = node_views([node])[0]
        view["token"] = token
        return view


@blp.route("/nodes/<node_id>")
class NodeItem(MethodView):
    @require_role("viewer")
    @blp.response(200, NodeSchema)
    def get(self, node_id):
        """Get a node"""
        return node_views([node_service.get_node(node_id)])[0]

    @require_role("operator")
    @blp.arguments(NodeUpdateSchema)
    @blp.response(200, NodeSchema)
    def patch(self, data, node_id):
        """Change a node's name, region or labels"""
        node = node_service.update_node(node_service.get_node(node_id), data)
        return node_views([node])[0]

    @require_role("operator")
    @blp.arguments(ConfirmArgsSchema, location="query")
    @blp.response(204)
    def delete(self, args, node_id):
        """Delete a node with its probes and metrics"""
        node_service.delete_node(node_service.get_node(node_id))


@blp.route("/nodes/<node_id>/token", methods=["POST"])
@require_role("operator")
@blp.response(200, TokenSchema)
def rotate_token(node_id):
    """Rotate a node's token; the old one stops working at once"""
    return {"token": node_service.rotate_node_token(node_service.get_node(node_id))}


@blp.route("/enrollment-tokens")
class EnrollmentTokens(MethodView):
    @require_role("operator")
    @blp.response(200, EnrollmentTokenListSchema)
    def get(self):
        """Enrollment tokens: uses left, expiry, creator (never the token)"""
        now = datetime.now(UTC)
        return {"data": [
            {"id": row.id, "expires_at": row.expires_at, "uses_left": row.uses_left,
             "created_by": row.created_by, "created_at": row.created_at,
             "usable": row.uses_left > 0 and _aware(row.expires_at) > now}
            for row in node_service.list_enrollment_tokens()]}


@blp.route("/enrollment-tokens/<token_id>", methods=["DELETE"])
@require_role("operator")
@blp.response(204)
def revoke_enrollment_token(token_id):
    """Revoke an enrollment token"""
    node_service.revoke_enrollment_token(token_id)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@blp.route("/enrollment-tokens", methods=["POST"])
@require_role("operator")
@blp.arguments(EnrollmentCreateSchema)
@blp.response(201, EnrollmentTokenSchema)
def create_enrollment_token(data):
    """An enrollment token a Beacon uses to register itself"""
    row, token = node_service.create_enrollment_token(
        data["expires_in_seconds"], data["uses"], g.principal.id if g.principal.kind == "user"
        else None)
    return {"id": row.id, "token": token, "expires_at": row.expires_at, "uses_left": row.uses_left}
