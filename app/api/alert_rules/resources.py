"""/api/v1/alert-rules — operator+ writes, viewer reads (SPEC §11)."""

from __future__ import annotations

from flask.views import MethodView

from app.alerts import rules as rule_service
from app.api.alert_rules.schemas import (
    RuleCreateSchema,
    RuleListSchema,
    RulePatchSchema,
    RuleSchema,
)
from app.api.common import Blueprint
from app.api.security import require_role

blp = Blueprint("alert_rules", __name__, url_prefix="/api/v1/alert-rules",
                description="Alert rules")


@blp.route("")
class RuleCollection(MethodView):
    @require_role("viewer")
    @blp.response(200, RuleListSchema)
    def get(self):
        """List alert rules"""
        return {"data": rule_service.list_rules()}

    @require_role("operator")
    @blp.arguments(RuleCreateSchema)
    @blp.response(201, RuleSchema)
    def post(self, data):
        """Create an alert rule"""
        return rule_service.create_rule(data)


@blp.route("/<rule_id>")
class RuleItem(MethodView):
    @require_role("viewer")
    @blp.response(200, RuleSchema)
    def get(self, rule_id):
        """Get an alert rule"""
        return rule_service.get_rule(rule_id)

    @require_role("operator")
    @blp.arguments(RuleCreateSchema)
    @blp.response(200, RuleSchema)
    def put(self, data, rule_id):
        """Replace an alert rule"""
        return rule_service.update_rule(rule_service.get_rule(rule_id), data, replace=True)

    @require_role("operator")
    @blp.arguments(RulePatchSchema)
    @blp.response(200, RuleSchema)
    def patch(self, data, rule_id):
        """Change some fields of an alert rule"""
        return rule_service.update_rule(rule_service.get_rule(rule_id), data)

    @require_role("operator")
    @blp.response(204)
    def delete(self, rule_id):
        """Delete an alert rule, its alerts and their history"""
        rule_service.delete_rule(rule_service.get_rule(rule_id))
