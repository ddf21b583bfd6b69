"""Passive mode (NUBE_AGENT_MODE=passive): signed but readable messages, loudly warned."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nube.tokens import Scope, TokenStore
from nube.tools.client import NubeClient
from nube.tools.devstack import Stack
from tests.conftest import agent_stack
from tests.redis_replies import one


@pytest.fixture
def passive_stack(tmp_path: Path) -> Iterator[Stack]:
    with agent_stack(tmp_path, NUBE_AGENT_MODE="passive") as stack:
        yield stack


def test_passive_mode_relays_readable_signed_messages(passive_stack: Stack) -> None:
    secret, _ = TokenStore(passive_stack.redis()).create("debug", [Scope.READ])
    client = NubeClient(passive_stack.api_url, secret)
    job = client.submit("GET", "/v1/vms")
    raw = passive_stack.redis()
    for _ in range(100):  # no VM worker yet: the relayed message waits, readable, in `vms`
        if raw.llen("vms"):
            break
        time.sleep(0.1)
    envelope = json.loads(base64.b64decode(json.loads(one(raw.lindex("vms", 0), str))["body"]))
    assert envelope["alg"] == "HS256" and "sig" in envelope  # signed ...
    _, kwargs, _ = json.loads(envelope["body"])  # ... and readable
    assert envelope["task"] == "vms.list" and kwargs["params"] == {}
    passive_stack.start_worker("vms")
    assert client.job(job["id"], wait=60)["status"] == "succeeded"
    log = (passive_stack.workdir / "agent.log").read_text()
    assert "NUBE_AGENT_MODE=passive" in log and "READABLE" in log
