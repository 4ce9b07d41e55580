"""/api/v1/nodes/{id}/metrics, /api/v1/nodes/{id}/live and /api/v1/overview (viewer+)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.api.common import Blueprint
from app.api.metrics.csv import csv_response, wants_csv
from app.api.metrics.schemas import LiveSchema, MetricsArgsSchema, MetricsSchema, OverviewSchema
from app.api.security import require_role
from app.errors import ApiError
from app.extensions import db
from app.history import queries
from app.models import Node, Probe
from app.services.nodes import get_node
from app.services.presence import node_views

blp = Blueprint("metrics", __name__, url_prefix="/api/v1", description="Metrics and overview")
DEFAULT_SPAN = timedelta(hours=1)


@blp.route("/nodes/<node_id>/metrics")
@require_role("viewer")
@blp.arguments(MetricsArgsSchema, location="query")
@blp.response(200, MetricsSchema)
def node_metrics(args, node_id):
    """A node's (or one probe's) points over a time range"""
    node = get_node(node_id)
    now = datetime.now(UTC)
    end = args["to"] or now
    start = args["from_"] or end - DEFAULT_SPAN
    if start > end or end - start > queries.MAX_RANGE:
        raise ApiError(400, "ERR_INVALID_TIMESTAMP", "from must be before to, and the range "
                       f"at most {queries.MAX_RANGE.days} days")
    probe = None
    if args["probe_id"] is not None:
        probe = db.session.scalar(
            select(Probe).where(Probe.id == args["probe_id"], Probe.node_id == node.id))
        if probe is None:
            raise ApiError(404, "ERR_PROBE_NOT_FOUND",
                           f"Probe {args['probe_id']} is not on this node")
    answer = queries.node_metrics(node.id, probe, start, end, args["resolution"], now)
    if args["format"] == "csv" or wants_csv():
        return csv_response(answer)
    return answer


@blp.route("/nodes/<node_id>/live")
@require_role("viewer")
@blp.response(200, LiveSchema)
def node_live(node_id):
    """The live hour of the node summary and of each of its probes"""
    return queries.node_live(get_node(node_id).id)


@blp.route("/overview")
@require_role("viewer")
@blp.response(200, OverviewSchema)
def overview():
    """Every node with its status, latest summary and 24 h uptime"""
    nodes = db.session.scalars(select(Node).order_by(Node.name)).all()
    views = node_views(nodes)
    latest = queries.latest_summaries([str(n.id) for n in nodes])
    return {"data": [
        {"node_id": v["id"], "name": v["name"], "status": v["status"],
         "last_seen_at": v["last_seen_at"], "latest": latest[str(v["id"])],
         "uptime_24h": v["uptime_24h"]}
        for v in views
    ]}
