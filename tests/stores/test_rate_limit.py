"""Over the rate limit: 429 problem+json with Retry-After (reliability #15)."""

from __future__ import annotations

import time

from api.app import create_app
from nube.settings import load_settings
from nube.tokens import Scope, TokenStore
from nube.tools.devstack import Stack


def test_over_the_limit_is_429_with_retry_after(redis_only: Stack) -> None:
    env = {**redis_only.env(), "NUBE_RATE_LIMIT": "5"}
    client = create_app(load_settings(env)).test_client()
    secret, _ = TokenStore(redis_only.redis()).create("ratelimited", [Scope.READ])
    headers = {"Authorization": f"Bearer {secret}"}
    if time.time() % 60 > 55:  # stay inside one fixed window
        time.sleep(61 - time.time() % 60)
    statuses = [client.get("/v1/jobs", headers=headers).status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
    r = client.get("/v1/jobs", headers=headers)
    assert r.mimetype == "application/problem+json" and r.get_json()["code"] == "rate_limited"
    assert 0 < int(r.headers["Retry-After"]) <= 60
    other, _ = TokenStore(redis_only.redis()).create("ratelimited", [Scope.READ])
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {other}"}).status_code == 200
