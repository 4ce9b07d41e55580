"""SQLAlchemy models, one module per aggregate."""

from app.models.alert import (
    Alert,
    AlertEvent,
    AlertRule,
    NotificationChannel,
    NotificationOutbox,
    Silence,
)
from app.models.audit import AuditLog
from app.models.drift import DriftExpected, DriftInstance
from app.models.metric import Metric, MetricBlock, MetricRollup
from app.models.node import EnrollmentToken, Node
from app.models.probe import Probe
from app.models.user import ApiToken, User

__all__ = [
    "Alert", "AlertEvent", "AlertRule", "NotificationChannel", "NotificationOutbox", "Silence",
    "ApiToken", "AuditLog", "DriftExpected", "DriftInstance", "EnrollmentToken", "Metric",
    "MetricBlock", "MetricRollup",
    "Node", "Probe", "User",
]
