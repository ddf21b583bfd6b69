"""RabbitMQ unreachable while Redis is up: a POST answers 503 ``backend_unavailable`` within
the publish timeout, and no job is left behind (the Redis-down case is in
``test_message_path_faults.py``)."""

from __future__ import annotations

import secrets
import time

from api.app import create_app
from nube.settings import load_settings
from nube.tokens import Scope, TokenStore
from nube.tools.devstack import Stack, free_port


def test_rabbitmq_down_during_post_is_503_and_leaves_no_job(stack: Stack) -> None:
    closed = f"amqp://nube:nube@127.0.0.1:{free_port()}/t1"
    settings = load_settings(stack.env(NUBE_BROKER_URL=closed, NUBE_PUBLISH_TIMEOUT="1"))
    assert settings.amqp
    tenant = f"t{secrets.token_hex(4)}"
    token, _ = TokenStore(stack.redis()).create(tenant, [Scope.READ, Scope.WRITE])
    client = create_app(settings).test_client()
    started = time.monotonic()
    r = client.post(
        "/v1/containers", json={"image": "busybox"}, headers={"Authorization": f"Bearer {token}"}
    )
    elapsed = time.monotonic() - started
    assert r.status_code == 503, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == "backend_unavailable"
    assert elapsed < 15, f"{elapsed:.1f} s"
    listed = client.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert listed["jobs"] == [], listed
