"""flask commands: users create, dev bootstrap, history pack."""

from __future__ import annotations

import secrets
import sys

import click
from flask import Flask
from flask.cli import AppGroup

from app.models.user import ROLES
from app.services import auth as auth_service

users_cli = AppGroup("users", help="Manage Pulse users.")
history_cli = AppGroup("history", help="Maintain stored history.")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password as one line on stdin.")
def create_user(email: str, role: str, password_stdin: bool) -> None:
    """Create a user (the password is prompted for, or read from stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = auth_service.create_user(email, password, role)
    except auth_service.AuthError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created {user.role} {user.email}")


@click.command("bootstrap-admin")
@click.option("--email", default="admin@pulse.local", show_default=True)
def bootstrap_admin(email: str) -> None:
    """Create the first admin with a random password, printed once (make run)."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import User

    if db.session.scalar(select(func.count(User.id))):
        click.echo("Users exist already; no admin created.")
        return
    password = secrets.token_urlsafe(12)
    auth_service.create_user(email, password, "admin")
    click.echo("=" * 60)
    click.echo(f"Admin created: {email}")
    click.echo(f"Password (shown once): {password}")
    click.echo("=" * 60)


@history_cli.command("pack")
@click.option("--days", type=click.IntRange(1, 3650), default=None,
              help="Only the newest DAYS (default: all that retention keeps).")
def pack_history(days: int | None) -> None:
    """Pack the chart blocks of history stored before them (after an upgrade): the roll-up
    packs every new hour and day itself. PostgreSQL only; safe to run again."""
    from datetime import UTC, datetime, timedelta

    from flask import current_app

    from app.extensions import db
    from app.history import blocks

    if db.engine.dialect.name != "postgresql":
        raise click.ClickException("chart blocks are kept on PostgreSQL only")
    config, now = current_app.config, datetime.now(UTC)
    until = now.replace(minute=0, second=0, microsecond=0)  # finished hours only
    spans = ((blocks.MINUTES, config["PULSE_RAW_RETENTION_DAYS"]),
             (blocks.HOURS, config["PULSE_HOURLY_RETENTION_DAYS"]))
    for kind, kept_days in spans:
        since = now - timedelta(days=min(days or kept_days, kept_days))
        packed = blocks.pack_missing(kind, since, until, progress=lambda k, done, total:
                                     click.echo(f"{k.resolution}: {done:,} / {total:,}"))
        click.echo(f"{kind.resolution}: {packed:,} periods packed")


def register_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(history_cli)
    app.cli.add_command(bootstrap_admin)
