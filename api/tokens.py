"""``/v1/tokens`` (admin): create, list and revoke bearer tokens."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import Field

from api.auth import require
from api.body import json_body
from api.routedoc import Answer, documented
from api.services import services
from nube.catalog import Params
from nube.tokens import Scope, TenantName

bp = Blueprint("tokens", __name__, url_prefix="/v1/tokens")


class TokenCreate(Params):
    tenant: TenantName
    scopes: list[Scope] = Field(min_length=1)
    name: str = Field(default="", max_length=100)


@bp.post("")
@documented("tokens.create", Answer.CREATED, body=TokenCreate)
@require("admin")
def create_token() -> tuple[Response, int]:
    """Create a token; the secret is in this response only."""
    spec = TokenCreate.model_validate(json_body())
    secret, info = services().tokens.create(spec.tenant, spec.scopes, spec.name)
    return jsonify({**info.model_dump(mode="json"), "token": secret}), 201


@bp.get("")
@documented("tokens.list")
@require("admin")
def list_tokens() -> Response:
    """Every token's id, tenant, scopes, name and creation time (never its secret)."""
    return jsonify({"tokens": [t.model_dump(mode="json") for t in services().tokens.list()]})


@bp.delete("/<token_id>")
@documented("tokens.revoke", Answer.DELETED)
@require("admin")
def revoke_token(token_id: str) -> tuple[str, int]:
    """Revoke a token: a request that carries it is ``401`` from now on."""
    services().tokens.revoke(token_id)
    return "", 204
