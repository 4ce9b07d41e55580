"""Nodes, their tokens and enrollment."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.errors import ApiError
from app.extensions import db
from app.ingest.node_lookup import forget_token, invalidate_node
from app.models import EnrollmentToken, Node
from app.services import audit
from app.tokens import ENROLL_PREFIX, NODE_PREFIX, hash_token, new_token

ONLINE_WINDOW = timedelta(minutes=3)


def node_exists_error(name: str) -> ApiError:
    return ApiError(409, "ERR_NODE_EXISTS", f"A node named {name!r} exists", {"name": name})


def get_node(node_id) -> Node:
    try:
        node = db.session.get(Node, node_id if isinstance(node_id, uuid.UUID)
                              else uuid.UUID(str(node_id)))
    except ValueError:
        node = None
    if node is None:
        raise ApiError(404, "ERR_NODE_NOT_FOUND", f"Node {node_id} does not exist")
    return node


def create_node(name: str, region: str | None = None, labels: dict | None = None,
                metadata: dict | None = None) -> tuple[Node, str]:
    """A new node and its token (the only time the token exists in plain text)."""
    if db.session.scalar(select(Node.id).where(Node.name == name)):
        raise node_exists_error(name)
    token = new_token(NODE_PREFIX)
    node = Node(name=name, region=region, labels=labels or {}, metadata_=metadata or {},
                token_hash=hash_token(token))
    return _insert_node(node), token


def _insert_node(node: Node, action: str = "node.create") -> Node:
    """Commit a new node; a concurrent create of the same name is the same 409."""
    node.id = node.id or uuid.uuid4()  # the audit row names it before the insert
    db.session.add(node)
    audit.record(action, "node", node.id, {"name": node.name})
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise node_exists_error(node.name) from exc
    return node


def update_node(node: Node, changes: dict) -> Node:
    name = changes.get("name")
    if name and name != node.name and db.session.scalar(select(Node.id).where(Node.name == name)):
        raise node_exists_error(name)
    for key, value in changes.items():
        setattr(node, "metadata_" if key == "metadata" else key, value)
    audit.record("node.update", "node", node.id, {"changed": sorted(changes)})
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise node_exists_error(name or node.name) from exc
    invalidate_node(node.id)
    return node


def rotate_node_token(node: Node) -> str:
    old_hash = node.token_hash
    token = new_token(NODE_PREFIX)
    node.token_hash = hash_token(token)
    audit.record("node.rotate_token", "node", node.id, {"name": node.name})
    db.session.commit()
    forget_token(old_hash)
    invalidate_node(node.id)
    return token


def delete_node(node: Node) -> None:
    node_id, token_hash = node.id, node.token_hash
    audit.record("node.delete", "node", node.id, {"name": node.name})
    db.session.delete(node)
    db.session.commit()
    forget_token(token_hash)
    invalidate_node(node_id)


def list_nodes(page: int = 1, per_page: int = 100):
    total = db.session.scalar(select(func.count(Node.id)))
    rows = db.session.scalars(
        select(Node).order_by(Node.name).limit(per_page).offset((page - 1) * per_page)
    ).all()
    pages = (total + per_page - 1) // per_page if total else 0
    return rows, {"page": page, "per_page": per_page, "total": total, "pages": pages}


def node_status(last_seen_at: datetime | None, now: datetime | None = None) -> str:
    if last_seen_at is None:
        return "never"
    now = now or datetime.now(UTC)
    if last_seen_at.tzinfo is None:
        last_seen_at = last_seen_at.replace(tzinfo=UTC)
    return "online" if now - last_seen_at <= ONLINE_WINDOW else "offline"


def create_enrollment_token(expires_in_seconds: int, uses: int,
                            created_by: uuid.UUID | None) -> tuple[EnrollmentToken, str]:
    token = new_token(ENROLL_PREFIX)
    row = EnrollmentToken(
        id=uuid.uuid4(), token_hash=hash_token(token), uses_left=uses, created_by=created_by,
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_in_seconds),
    )
    db.session.add(row)
    audit.record("enrollment_token.create", "enrollment_token", row.id,
                 {"uses": uses, "expires_in_seconds": expires_in_seconds})
    db.session.commit()
    return row, token


def list_enrollment_tokens() -> list[EnrollmentToken]:
    """Every enrollment token, newest first (never the token itself: only its hash is kept)."""
    return db.session.scalars(select(EnrollmentToken).order_by(
        EnrollmentToken.created_at.desc(), EnrollmentToken.id)).all()


def revoke_enrollment_token(token_id) -> None:
    """Delete an enrollment token: no Beacon can register with it from now on."""
    try:
        row = db.session.get(EnrollmentToken, token_id if isinstance(token_id, uuid.UUID)
                             else uuid.UUID(str(token_id)))
    except ValueError:
        row = None
    if row is None:
        raise ApiError(404, "ERR_ENROLLMENT_TOKEN_NOT_FOUND",
                       f"Enrollment token {token_id} does not exist")
    audit.record("enrollment_token.revoke", "enrollment_token", row.id,
                 {"uses_left": row.uses_left})
    db.session.delete(row)
    db.session.commit()


def enroll_node(enroll_token: str, name: str, metadata: dict | None) -> tuple[Node, str]:
    """Spend one use of an enrollment token on a new node (compare-and-set on uses_left)."""
    now = datetime.now(UTC)
    row = db.session.scalar(
        select(EnrollmentToken).where(EnrollmentToken.token_hash == hash_token(enroll_token))
    )
    expires_at = row.expires_at if row else None
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if row is None or row.uses_left <= 0 or expires_at <= now:
        raise ApiError(401, "ERR_INVALID_ENROLLMENT_TOKEN",
                       "Enrollment token is unknown, expired or used up")
    spent = db.session.execute(
        EnrollmentToken.__table__.update()
        .where(EnrollmentToken.id == row.id, EnrollmentToken.uses_left == row.uses_left)
        .values(uses_left=row.uses_left - 1)
    ).rowcount
    if spent != 1:
        db.session.rollback()
        raise ApiError(409, "ERR_CONFLICT", "Enrollment token was used concurrently; try again")
    metadata = metadata or {}
    if db.session.scalar(select(Node.id).where(Node.name == name)):
        db.session.rollback()
        raise node_exists_error(name)
    token = new_token(NODE_PREFIX)
    node = Node(name=name, region=metadata.get("region"), labels={}, metadata_=metadata,
                hostname=metadata.get("hostname"), ip_address=metadata.get("ip_address"),
                token_hash=hash_token(token))
    return _insert_node(node, "node.enroll"), token
