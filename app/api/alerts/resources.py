"""/api/v1/alerts and /api/v1/alert-events — viewer+ (SPEC §11)."""

from __future__ import annotations

from flask.views import MethodView

from app.alerts import views
from app.api.alerts.schemas import (
    AlertArgsSchema,
    AlertListSchema,
    EventArgsSchema,
    EventListSchema,
)
from app.api.common import Blueprint
from app.api.security import require_role

blp = Blueprint("alerts", __name__, url_prefix="/api/v1/alerts", description="Alerts")
events_blp = Blueprint("alert_events", __name__, url_prefix="/api/v1/alert-events",
                       description="Alert events: every transition, with its deliveries")


@blp.route("")
class AlertCollection(MethodView):
    @require_role("viewer")
    @blp.arguments(AlertArgsSchema, location="query")
    @blp.response(200, AlertListSchema)
    def get(self, args):
        """Alerts, newest first (pending, firing, resolved)"""
        return {"data": views.list_alerts(args["state"], args["node_id"], args["probe_id"])}


@events_blp.route("")
class EventCollection(MethodView):
    @require_role("viewer")
    @events_blp.arguments(EventArgsSchema, location="query")
    @events_blp.response(200, EventListSchema)
    def get(self, args):
        """Every transition in [from, to], newest first, with notification outcomes"""
        return {"data": views.list_events(args["from_"], args["to"])}
