"""/api/v1/reports/sla — availability, loss and latency per probe over a period (viewer+)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.api.common import Blueprint
from app.api.reports.schemas import SlaArgsSchema, SlaReportSchema
from app.api.security import require_role
from app.errors import ApiError
from app.history.sla import sla_csv, sla_report
from app.services.nodes import get_node

blp = Blueprint("reports", __name__, url_prefix="/api/v1/reports", description="Reports")
DEFAULT_SPAN = timedelta(days=30)
MAX_SPAN = timedelta(days=800)


@blp.route("/sla")
@require_role("viewer")
@blp.arguments(SlaArgsSchema, location="query")
@blp.doc(responses={"200": {"description": "OK", "content": {  # ?format=csv: as CSV
    "application/json": {"schema": {"$ref": "#/components/schemas/SlaReport"}},
    "text/csv": {"schema": {"type": "string"}}}}})
@blp.response(200, SlaReportSchema)
def sla(args):
    """Per probe: expected runs, runs with data, availability, loss, latency percentiles"""
    end = args["to"] or datetime.now(UTC)
    start = args["from_"] or end - DEFAULT_SPAN
    if start >= end or end - start > MAX_SPAN:
        raise ApiError(400, "ERR_INVALID_TIMESTAMP",
                       "from must be before to, and the period at most 800 days")
    node_id = get_node(args["node_id"]).id if args["node_id"] else None
    rows = sla_report(start, end, node_id)
    if args["format"] == "csv":
        return sla_csv(rows, start, end)
    return {"start": start, "end": end, "node_id": node_id, "data": rows}
