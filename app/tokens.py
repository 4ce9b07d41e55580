"""Random bearer secrets: 256-bit, shown once, stored only as SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# Prefixes tell an operator (and a secret scanner) what kind of token leaked.
NODE_PREFIX = "pbn_"
API_PREFIX = "pba_"
ENROLL_PREFIX = "pbe_"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hashes_match(stored_hash: str, token: str) -> bool:
    """Constant-time comparison of a stored hash with a presented token."""
    return hmac.compare_digest(stored_hash, hash_token(token))
