"""Every blueprint, registered in one place."""

from __future__ import annotations

from flask import Flask, request
from flask_smorest import Api

from app.services import audit


def register_blueprints(app: Flask, api: Api) -> None:
    from app.api.alert_rules.resources import blp as alert_rules_blp
    from app.api.alerts.resources import blp as alerts_blp
    from app.api.alerts.resources import events_blp as alert_events_blp
    from app.api.audit.resources import blp as audit_blp
    from app.api.auth.resources import blp as auth_blp
    from app.api.beacon.resources import blp as beacon_blp
    from app.api.drift.resources import blp as drift_blp
    from app.api.metrics.resources import blp as metrics_blp
    from app.api.nodes.resources import blp as nodes_blp
    from app.api.notification_channels.resources import blp as channels_blp
    from app.api.ops import assets, ops
    from app.api.probes.resources import blp as probes_blp
    from app.api.prometheus.resources import blp as prometheus_blp
    from app.api.reports.resources import blp as reports_blp
    from app.api.silences.resources import blp as silences_blp

    for blp in (auth_blp, nodes_blp, probes_blp, beacon_blp, metrics_blp, drift_blp, audit_blp,
                reports_blp, prometheus_blp, ops):
        api.register_blueprint(blp)
    for blp in (alert_rules_blp, alerts_blp, alert_events_blp, channels_blp, silences_blp):
        api.register_blueprint(blp)
    app.register_blueprint(assets)

    @app.before_request
    def _audit_context() -> None:
        # From where (ProxyFix-corrected); who acts is set once the bearer is checked.
        audit.begin(request.remote_addr)

    @app.teardown_request
    def _audit_context_end(_error=None) -> None:
        audit.end()
