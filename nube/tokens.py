"""Bearer tokens: each maps to a tenant and scopes; only a hash of the secret is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import redis
from pydantic import BaseModel, StringConstraints

from nube.errors import NotFound, Unauthorized

TOKEN_PREFIX = "nube_"

#: A tenant name: lower-case letters, digits, `-` and `_`.
TenantName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


#: What each scope includes: write implies read; admin implies everything.
IMPLIED = {
    Scope.READ: {Scope.READ},
    Scope.WRITE: {Scope.READ, Scope.WRITE},
    Scope.ADMIN: {Scope.READ, Scope.WRITE, Scope.ADMIN},
}


class TokenInfo(BaseModel):
    """A token as stored and listed (never its secret)."""

    id: str
    tenant: TenantName
    scopes: list[Scope]
    name: str = ""
    created_at: str

    def allows(self, scope: Scope | str) -> bool:
        granted = set().union(*(IMPLIED[s] for s in self.scopes))
        return Scope(scope) in granted

    @property
    def admin(self) -> bool:
        return Scope.ADMIN in self.scopes


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Tokens in Redis: ``nube:token:<sha256(secret)>`` → info, ``nube:token-ids`` id → hash."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def create(
        self, tenant: str, scopes: list[Scope], name: str = "", secret: str | None = None
    ) -> tuple[str, TokenInfo]:
        """Make a token; returns the secret (shown once) and its info."""
        token_id = secrets.token_hex(6)
        secret = secret or f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
        created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        info = TokenInfo(id=token_id, tenant=tenant, scopes=scopes, name=name, created_at=created)
        pipe = self.redis.pipeline()
        pipe.set(f"nube:token:{_hash(secret)}", info.model_dump_json())
        pipe.hset("nube:token-ids", token_id, _hash(secret))
        pipe.execute()
        return secret, info

    def resolve(self, secret: str) -> TokenInfo:
        """The token's info, or ``Unauthorized``. One read: :meth:`revoke` removes the id and
        the info together (a transaction), so a token whose info exists is not revoked."""
        raw = self.redis.get(f"nube:token:{_hash(secret)}")
        if raw is None:
            raise Unauthorized()
        return TokenInfo.model_validate_json(raw)

    def list(self) -> list[TokenInfo]:
        hashes = self.redis.hvals("nube:token-ids")
        raws = self.redis.mget([f"nube:token:{h!s}" for h in hashes]) if hashes else []
        return sorted(
            (TokenInfo.model_validate_json(r) for r in raws if r), key=lambda t: t.created_at
        )

    def revoke(self, token_id: str) -> None:
        digest = self.redis.hget("nube:token-ids", token_id)
        if digest is None:
            raise NotFound(kind="token", id=token_id)
        pipe = self.redis.pipeline()
        pipe.hdel("nube:token-ids", token_id)
        pipe.delete(f"nube:token:{digest!s}")
        pipe.execute()
