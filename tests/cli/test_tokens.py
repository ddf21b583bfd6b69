"""``nube tokens`` against a stack as ``make up`` leaves it (its .nube/local.env), through the
API and with ``--redis``; ``nube audit verify`` with the same file; failures are one line."""

from __future__ import annotations

import dataclasses

import pytest

from nube.tools.client import ApiError, NubeClient
from nube.tools.devstack import Stack, _admin_token
from tests.cli.conftest import Cli, one_line, parsed
from tests.conftest import ClientFactory


@pytest.fixture
def made_up(bare: Cli, stack: Stack) -> Cli:
    """``nube`` in a directory holding what ``make up`` writes: .nube/local.env (mode 600)
    with the URL, an admin token and the stack's Redis settings; nothing in the environment."""
    _admin_token(dataclasses.replace(stack, workdir=bare.cwd / ".nube"), None)
    return bare


def test_tokens_through_the_api_with_make_ups_local_env(made_up: Cli, stack: Stack) -> None:
    local_env = (made_up.cwd / ".nube" / "local.env").read_text()
    assert "NUBE_REDIS_URL=" in local_env and "NUBE_REDIS_PASSWORD=" in local_env
    created = made_up("tokens", "create", "--tenant", "cli-acme", "--scope", "read")
    assert created.returncode == 0, created.stderr
    secret = one_line(created.stdout)  # the secret alone on stdout (scripts: $(...))
    assert "tenant cli-acme, scopes read" in created.stderr
    assert NubeClient(stack.api_url, secret).jobs(limit=1)["jobs"] == []

    listed = parsed(made_up("tokens", "list", "--json"))["tokens"]
    mine = [t for t in listed if t["tenant"] == "cli-acme"]
    assert len(mine) == 1 and "token" not in mine[0]
    assert mine[0]["id"] in made_up("tokens", "list").stdout
    assert made_up("tokens", "revoke", mine[0]["id"]).returncode == 0
    with pytest.raises(ApiError) as refused:
        NubeClient(stack.api_url, secret).jobs(limit=1)
    assert refused.value.status == 401
    unknown = made_up("tokens", "revoke", mine[0]["id"])
    assert unknown.returncode == 1 and one_line(unknown.stderr).startswith("error: not_found:")


def test_tokens_in_redis_and_audit_verify_with_local_env(made_up: Cli, stack: Stack) -> None:
    created = made_up("tokens", "create", "--tenant", "cli-redis", "--redis", "--json")
    made = parsed(created)
    assert made["tenant"] == "cli-redis" and made["scopes"] == ["read", "write"]
    assert NubeClient(stack.api_url, made["token"]).jobs(limit=1)["jobs"] == []
    assert made_up("tokens", "revoke", made["id"], "--redis").returncode == 0
    verified = made_up("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("redis: ok, ")


def test_token_failures_are_one_line(
    made_up: Cli, bare: Cli, make_client: ClientFactory, stack: Stack
) -> None:
    # Not an admin: the API refuses.
    writer = make_client()
    token = str(writer.session.headers["Authorization"]).removeprefix("Bearer ")
    refused = bare("tokens", "list", NUBE_URL=stack.api_url, NUBE_TOKEN=token)
    assert refused.returncode == 1
    assert one_line(refused.stderr).startswith("error: forbidden: ")
    # The Redis of local.env with a wrong password (before: a traceback).
    local_env = made_up.cwd / ".nube" / "local.env"
    text = local_env.read_text()
    local_env.write_text(
        "".join(
            line + "\n"
            for line in text.splitlines()
            if not line.startswith(("NUBE_REDIS_PASSWORD", "NUBE_URL", "NUBE_TOKEN"))
        )
        + "NUBE_REDIS_PASSWORD=wrong\n"
    )
    wrong = made_up("tokens", "create", "--tenant", "cli-x")  # no URL: Redis
    assert wrong.returncode == 3 and wrong.stdout == ""
    assert one_line(wrong.stderr).startswith("error: Redis refused the password")
    audit = made_up("audit", "verify")
    assert audit.returncode == 3 and one_line(audit.stderr).startswith("error: Redis refused")
    bad_setting = made_up("tokens", "list", "--redis", NUBE_REDIS_URL="http://nope")
    assert bad_setting.returncode == 2
    assert one_line(bad_setting.stderr).startswith("error: NUBE_REDIS_URL must be a redis://")
    api = {"NUBE_URL": "http://127.0.0.1:9", "NUBE_TOKEN": "y"}
    secret = made_up("tokens", "create", "--tenant", "t", "--secret", "s", **api)
    assert secret.returncode == 2 and "--secret needs --redis" in one_line(secret.stderr)
