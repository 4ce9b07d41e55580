"""Channel URLs are secrets: encrypted at rest with a key derived from SECRET_KEY, shown
redacted (scheme and host only), never logged.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with its key derived by HKDF, so
the URL key is not SECRET_KEY itself (which also signs access tokens). Rotating
SECRET_KEY makes stored URLs unreadable: they must be entered again (docs).
"""

from __future__ import annotations

import base64
import ipaddress
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

_INFO = b"pulse notification channel url v1"


class ChannelKeyError(RuntimeError):
    """A stored URL cannot be decrypted with this SECRET_KEY."""


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_url(url: str, secret_key: str | None = None) -> str:
    return _fernet(secret_key or current_app.config["SECRET_KEY"]).encrypt(
        url.encode()).decode()


def decrypt_url(token: str, secret_key: str | None = None) -> str:
    try:
        return _fernet(secret_key or current_app.config["SECRET_KEY"]).decrypt(
            token.encode()).decode()
    except InvalidToken as exc:
        raise ChannelKeyError("the channel URL was encrypted with another SECRET_KEY") from exc


def _public_host(host: str) -> bool:
    """Whether the URL's host part is a host name or address, not a secret: many apprise
    URLs carry a token where the host would be (`tgram://<bot token>/…`,
    `discord://<webhook id>/<token>`), so only dotted names, IPs and localhost show."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.split(".")
    return len(labels) >= 2 and all(labels) and not labels[-1].isdigit()


def redact_url(url: str) -> str:
    """`scheme://host` of a URL (no user, password, port, path or query), or `scheme://…`
    when the host part may be a token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "…"
    scheme = parts.scheme.lower() or "?"
    return f"{scheme}://{host}" if host and _public_host(host) else f"{scheme}://…"
