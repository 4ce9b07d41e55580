"""Shared column types and helpers for the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, Integer, Uuid
from sqlalchemy.dialects.postgresql import JSONB

# JSONB on PostgreSQL, plain JSON (text) elsewhere.
JsonType = JSON().with_variant(JSONB(), "postgresql")
# bigserial on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
BigIntPk = BigInteger().with_variant(Integer(), "sqlite")
UuidType = Uuid(as_uuid=True)
Timestamp = DateTime(timezone=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()
