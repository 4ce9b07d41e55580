"""/api/v1/notification-channels — operator+ writes and tests, viewer reads (SPEC §11)."""

from __future__ import annotations

from flask.views import MethodView

from app.alerts import channels as channel_service
from app.alerts.outbox import test_channel
from app.api.common import Blueprint
from app.api.notification_channels.schemas import (
    ChannelCreateSchema,
    ChannelListSchema,
    ChannelPatchSchema,
    ChannelSchema,
    TestOutcomeSchema,
)
from app.api.security import require_role

blp = Blueprint("notification_channels", __name__, url_prefix="/api/v1/notification-channels",
                description="Where alerts are sent: apprise URLs and Alertmanager webhooks")


@blp.route("")
class ChannelCollection(MethodView):
    @require_role("viewer")
    @blp.response(200, ChannelListSchema)
    def get(self):
        """List channels (URLs redacted)"""
        return {"data": channel_service.list_channels()}

    @require_role("operator")
    @blp.arguments(ChannelCreateSchema)
    @blp.response(201, ChannelSchema)
    def post(self, data):
        """Create a channel"""
        return channel_service.create_channel(data["name"], data["kind"], data["url"])


@blp.route("/<channel_id>")
class ChannelItem(MethodView):
    @require_role("viewer")
    @blp.response(200, ChannelSchema)
    def get(self, channel_id):
        """Get a channel (URL redacted)"""
        return channel_service.get_channel(channel_id)

    @require_role("operator")
    @blp.arguments(ChannelPatchSchema)
    @blp.response(200, ChannelSchema)
    def patch(self, data, channel_id):
        """Rename a channel or replace its URL"""
        return channel_service.update_channel(channel_service.get_channel(channel_id), data)

    @require_role("operator")
    @blp.response(204)
    def delete(self, channel_id):
        """Delete a channel (rules naming it stop using it)"""
        channel_service.delete_channel(channel_service.get_channel(channel_id))


@blp.route("/<channel_id>/test")
class ChannelTest(MethodView):
    @require_role("operator")
    @blp.response(200, TestOutcomeSchema)
    def post(self, channel_id):
        """Send a test message now and answer the outcome"""
        outcome = test_channel(channel_service.get_channel(channel_id))
        return {"status": outcome.status, "error": outcome.error}
