"""Bearer-token access: every route but health needs a token with the route's scope."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request

from api.services import services
from nube.errors import Forbidden, RateLimited, Unauthorized
from nube.tokens import TokenInfo

F = TypeVar("F", bound=Callable[..., Any])

_SCOPE_ATTR = "nube_scope"


def current_token() -> TokenInfo:
    token: TokenInfo = g.token
    return token


def authenticate() -> TokenInfo:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized()
    return services().tokens.resolve(secret.strip())


def enforce_rate_limit(token: TokenInfo) -> None:
    """At most ``NUBE_RATE_LIMIT`` requests per token per minute (a fixed window in Redis)."""
    svc = services()
    limit = svc.settings.rate_limit
    if not limit:
        return
    window = int(time.time() // 60)
    key = f"nube:rate:{token.id}:{window}"
    pipe = svc.redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count = int(pipe.execute()[0])
    if count > limit:
        raise RateLimited(retry_after=60 - int(time.time()) % 60)


def require(scope: str) -> Callable[[F], F]:
    """Decorator: the request must carry a token that grants ``scope``."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            token = authenticate()
            if not token.allows(scope):
                raise Forbidden(scope=scope)
            enforce_rate_limit(token)
            g.token = token
            return view(*args, **kwargs)

        setattr(guarded, _SCOPE_ATTR, scope)
        return cast(F, guarded)

    return decorate


def required_scope(view: Callable[..., Any]) -> str | None:
    """The scope ``@require`` demands of ``view``; None for a public view (for the document)."""
    scope = getattr(view, _SCOPE_ATTR, None)
    return scope if isinstance(scope, str) else None
