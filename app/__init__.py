"""Pulse: the app factory."""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import extensions as ext
from app.config import Config
from app.json_provider import OrjsonProvider

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "migrations")


def create_app(config: Config | dict[str, Any] | None = None) -> Flask:
    """Build a Pulse app: config -> extensions -> blueprints -> error handlers -> CLI."""
    app = Flask(__name__, instance_relative_config=True)
    settings = config if isinstance(config, dict) else (config or Config()).as_dict()
    app.config.update(settings)
    if app.config.get("PROMETHEUS_MULTIPROC_DIR"):
        # prometheus_client writes there from the first labelled metric on, in every
        # process (a `flask db upgrade` release phase included), not only under gunicorn.
        os.makedirs(app.config["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(
            app.instance_path, "pulse.db")
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(app.instance_path)
    app.json = OrjsonProvider(app)
    app.json.sort_keys = False
    logging.getLogger("app").setLevel(logging.INFO)

    # `app.api` is a subpackage, so the smorest Api is reached through `ext` here.
    ext.db.init_app(app)
    ext.migrate.init_app(app, ext.db, directory=MIGRATIONS_DIR,
                         include_object=ext.not_a_partition)
    ext.redis_store.init_app(app)
    from app.api.error_handlers import ErrorSchema

    ext.api.ERROR_SCHEMA = ErrorSchema  # document our {"code","message","details"}
    ext.api.init_app(app)
    from app.api.fields import document_key_rules

    ext.api.ma_plugin.converter.add_attribute_function(document_key_rules)

    from app.api.error_handlers import register_error_handlers
    from app.api.registry import register_blueprints

    register_blueprints(app, ext.api)
    register_error_handlers(app)
    from app.ingest.fast_path import install as install_heartbeat_fast_path
    from app.ingest.rate_limit import init_rate_limit
    from app.services.auth import init_login_limit
    from app.telemetry import init_telemetry

    init_telemetry(app)
    init_rate_limit(app)
    init_login_limit(app)
    from app.api.error_handlers import guard_body_reads

    app.wsgi_app = guard_body_reads(app.wsgi_app)
    install_heartbeat_fast_path(app)
    if app.config.get("PULSE_TRUSTED_PROXIES"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["PULSE_TRUSTED_PROXIES"]  # the client address is theirs to tell
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    # Pages and their cookie sessions; /api/ stays bearer-only and never opens a session.
    from app.dashboard import init_dashboard

    init_dashboard(app)
    from app.cli import register_cli

    register_cli(app)
    return app


def instance_secret_key(instance_path: str) -> str:
    """Development's SECRET_KEY: read from instance/secret_key, created (0600) on first use."""
    path = os.path.join(instance_path, "secret_key")
    try:
        with open(path) as handle:
            key = handle.read().strip()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(instance_path, exist_ok=True)
    key = secrets.token_urlsafe(48)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key


@event.listens_for(Engine, "connect")
def _sqlite_foreign_keys(dbapi_connection, connection_record) -> None:
    # SQLite enforces ON DELETE CASCADE only with this pragma, per connection.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
