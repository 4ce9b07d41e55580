"""/api/v1/auth/login, /api/v1/api-tokens and /api/v1/users."""

from __future__ import annotations

import uuid

from flask import g, request
from flask.views import MethodView
from sqlalchemy import select

from app.api.auth.schemas import (
    AccessTokenSchema,
    ApiTokenCreateSchema,
    ApiTokenSchema,
    ApiTokenWithSecretSchema,
    LoginSchema,
    UserCreateSchema,
    UserPatchSchema,
    UserSchema,
)
from app.api.common import Blueprint
from app.api.security import require_role
from app.errors import ApiError
from app.extensions import db
from app.models import ApiToken, User
from app.services import auth as auth_service

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="Login, users, API tokens")


@blp.route("/auth/login", methods=["POST"])
@blp.doc(security=[])
@blp.arguments(LoginSchema)
@blp.response(200, AccessTokenSchema)
@blp.alt_response(429, description="Too many failed logins for this account or address")
def login(data):
    """Exchange email and password for a bearer access token"""
    user = auth_service.login(data["email"], data["password"], request.remote_addr)
    token, expires_in = auth_service.issue_access_token(user)
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in,
            "role": user.role}


@blp.route("/api-tokens")
class ApiTokenCollection(MethodView):
    @require_role("operator")
    @blp.response(200, ApiTokenSchema(many=True))
    def get(self):
        """List API tokens (operators see those of role operator or below)"""
        query = select(ApiToken).order_by(ApiToken.created_at)
        if not g.principal.has_role("admin"):
            query = query.where(ApiToken.role != "admin")
        return db.session.scalars(query).all()

    @require_role("operator")
    @blp.arguments(ApiTokenCreateSchema)
    @blp.response(201, ApiTokenWithSecretSchema)
    def post(self, data):
        """Create an API token; the token is in this answer only"""
        if not g.principal.has_role(data["role"]):
            raise ApiError(403, "ERR_FORBIDDEN", "Cannot create a token above your own role")
        created_by = g.principal.id if g.principal.kind == "user" else None
        row, token = auth_service.create_api_token(data["name"], data["role"], created_by)
        result = {c.key: getattr(row, c.key) for c in ApiToken.__mapper__.column_attrs}
        result["token"] = token
        return result


@blp.route("/api-tokens/<token_id>", methods=["DELETE"])
@require_role("operator")
@blp.response(204)
def revoke_api_token(token_id):
    """Revoke an API token"""
    try:
        row = db.session.get(ApiToken, uuid.UUID(token_id))
    except ValueError:
        row = None
    if row is None:
        raise ApiError(404, "ERR_TOKEN_NOT_FOUND", f"API token {token_id} does not exist")
    if not g.principal.has_role(row.role):
        raise ApiError(403, "ERR_FORBIDDEN", "Cannot revoke a token above your own role")
    auth_service.revoke_api_token(row.id)


@blp.route("/users")
class UserCollection(MethodView):
    @require_role("admin")
    @blp.response(200, UserSchema(many=True))
    def get(self):
        """List users"""
        return db.session.scalars(select(User).order_by(User.email)).all()

    @require_role("admin")
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    def post(self, data):
        """Create a user"""
        try:
            return auth_service.create_user(data["email"], data["password"], data["role"])
        except auth_service.AuthError as exc:
            raise ApiError(409, "ERR_USER_EXISTS", str(exc)) from exc


@blp.route("/users/<user_id>")
class UserItem(MethodView):
    @require_role("admin")
    @blp.response(200, UserSchema)
    def get(self, user_id):
        """Get a user"""
        return auth_service.get_user(user_id)

    @require_role("admin")
    @blp.arguments(UserPatchSchema)
    @blp.response(200, UserSchema)
    def patch(self, data, user_id):
        """Change a user's role or password; applies in every process at once"""
        return auth_service.update_user(auth_service.get_user(user_id), data.get("role"),
                                        data.get("password"))

    @require_role("admin")
    @blp.response(204)
    def delete(self, user_id):
        """Delete a user; their access tokens stop working at once"""
        auth_service.delete_user(auth_service.get_user(user_id))
