"""Notification channels: an apprise URL or a webhook URL, stored encrypted, shown redacted.

A refused URL is never echoed back (it is a secret, and answers end up in logs).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.alerts.channel_crypto import encrypt_url, redact_url
from app.alerts.notifiers import apprise_accepts
from app.errors import ApiError
from app.extensions import db
from app.models import NotificationChannel

MAX_URL_LENGTH = 2048


def _url_problem(kind: str, url: str) -> str | None:
    if len(url) > MAX_URL_LENGTH:
        return f"at most {MAX_URL_LENGTH} characters"
    if kind == "webhook":
        try:
            parts = urlsplit(url)
        except ValueError:
            return "not a valid URL"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "a webhook URL is http:// or https:// with a host"
        return None
    if not apprise_accepts(url):
        return "apprise does not recognise this URL (see its list of services)"
    return None


def _check_url(kind: str, url: str) -> None:
    problem = _url_problem(kind, url)
    if problem:
        raise ApiError(400, "ERR_INVALID_CHANNEL", f"url: {problem}",
                       {"fields": {"url": [problem]}})


def _exists(name: str) -> ApiError:
    return ApiError(409, "ERR_CHANNEL_EXISTS", f"A channel named {name!r} exists")


def _commit(name: str) -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise _exists(name) from exc


def create_channel(name: str, kind: str, url: str) -> NotificationChannel:
    _check_url(kind, url)
    if db.session.scalar(select(NotificationChannel.id).where(NotificationChannel.name == name)):
        raise _exists(name)
    channel = NotificationChannel(name=name, kind=kind, url_encrypted=encrypt_url(url),
                                  url_redacted=redact_url(url))
    db.session.add(channel)
    _commit(name)
    return channel


def get_channel(channel_id) -> NotificationChannel:
    try:
        channel = db.session.get(NotificationChannel, uuid.UUID(str(channel_id)))
    except ValueError:
        channel = None
    if channel is None:
        raise ApiError(404, "ERR_CHANNEL_NOT_FOUND", "No such notification channel")
    return channel


def update_channel(channel: NotificationChannel, changes: dict) -> NotificationChannel:
    kind = changes.get("kind", channel.kind)
    if "url" in changes:
        _check_url(kind, changes["url"])
        channel.url_encrypted = encrypt_url(changes["url"])
        channel.url_redacted = redact_url(changes["url"])
    elif kind != channel.kind:
        raise ApiError(400, "ERR_INVALID_CHANNEL", "url: give the URL again to change kind",
                       {"fields": {"url": ["required to change kind"]}})
    channel.kind = kind
    if "name" in changes and changes["name"] != channel.name:
        if db.session.scalar(select(NotificationChannel.id).where(
                NotificationChannel.name == changes["name"])):
            raise _exists(changes["name"])
        channel.name = changes["name"]
    _commit(channel.name)
    return channel


def delete_channel(channel: NotificationChannel) -> None:
    """Its pending deliveries go with it; rules naming it simply stop using it."""
    db.session.execute(delete(NotificationChannel).where(NotificationChannel.id == channel.id))
    db.session.commit()


def list_channels() -> list[NotificationChannel]:
    return list(db.session.scalars(select(NotificationChannel).order_by(
        NotificationChannel.name)))
