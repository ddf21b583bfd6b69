"""`make up` checks its settings before it starts anything (issue 8, item 5).

``python -m nube.tools.devstack`` runs as `make up` does, as a subprocess, on free ports: a bad
``NUBE_*`` value or policy file stops it with one line naming the variable, no traceback, and
nothing started. The rest checks how the environment reaches the services, without processes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nube.settings import SettingsError
from nube.tools.devstack import ROOT, local_environment, prepare, settings_lines
from tests.conftest import free_port, need


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(
    ("bad", "variable"),
    [
        ({"NUBE_RATE_LIMIT": "abc"}, "NUBE_RATE_LIMIT"),
        ({"NUBE_POLICY_FILE": "bad-policy.yaml"}, "NUBE_POLICY_FILE"),
    ],
)
def test_bad_setting_stops_make_up_with_one_line(
    tmp_path: Path, bad: dict[str, str], variable: str
) -> None:
    need(shutil.which("redis-server") is not None, "redis-server")
    (tmp_path / "bad-policy.yaml").write_text("version: 1\ndefault: {containers: {imagez: []}}\n")
    ports = {name: free_port() for name in ("NUBE_REDIS_PORT", "NUBE_API_PORT", "NUBE_FLOWER_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUBE_")}
    env.update({k: str(v) for k, v in ports.items()}, PYTHONPATH=str(ROOT), **bad)
    done = subprocess.run(
        [sys.executable, "-m", "nube.tools.devstack"],
        cwd=tmp_path,  # a relative NUBE_POLICY_FILE is the caller's, as in a shell
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"nube: {variable}: "), lines
    assert "Traceback" not in done.stderr + done.stdout
    assert "starting" not in done.stdout  # it stopped before starting anything
    if variable == "NUBE_POLICY_FILE":
        assert str(tmp_path / "bad-policy.yaml") in lines[0] and "imagez" in lines[0]
    assert not any(_listening(port) for port in ports.values())


def test_every_nube_variable_passes_but_the_stacks_own(tmp_path: Path) -> None:
    env = {
        "NUBE_POLICY_FILE": "policy.yaml",
        "NUBE_RATE_LIMIT": "7",
        "NUBE_NODE": "here",
        "NUBE_REDIS_URL": "redis://elsewhere:1/0",
        "NUBE_REDIS_PASSWORD_FILE": "/nonexistent",
        "NUBE_KEYS": "not-a-keyring",
        "NUBE_API_BIND": "0.0.0.0:1",
        "PATH": "/bin",
    }
    passed, ignored = local_environment(env)
    assert passed == {
        "NUBE_POLICY_FILE": os.path.abspath("policy.yaml"),
        "NUBE_RATE_LIMIT": "7",
        "NUBE_NODE": "here",
    }
    assert ignored == ["NUBE_API_BIND", "NUBE_KEYS", "NUBE_REDIS_PASSWORD_FILE", "NUBE_REDIS_URL"]

    (tmp_path / "policy.yaml").write_text("version: 1\n")
    env["NUBE_POLICY_FILE"] = str(tmp_path / "policy.yaml")
    stack, settings = prepare(env, tmp_path / "work")
    assert settings.rate_limit == 7 and settings.node == "here"
    assert settings.redis_url == stack.redis_url and settings.redis_password == stack.redis_password
    assert settings.keys == stack.keys
    assert stack.env()["NUBE_API_BIND"] == f"127.0.0.1:{stack.api_port}"
    assert f"  policy   {tmp_path / 'policy.yaml'}" in settings_lines(stack, settings)
    assert not (tmp_path / "work").exists()  # preparing writes nothing


def test_without_a_policy_the_announcement_says_so(tmp_path: Path) -> None:
    stack, settings = prepare({"NUBE_AUDIT_FILE": str(tmp_path / "audit.jsonl")}, tmp_path)
    lines = settings_lines(stack, settings)
    assert "  policy   none (every image allowed)" in lines
    assert any(line.startswith(f"  audit    {tmp_path / 'audit.jsonl'}") for line in lines)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"NUBE_API_PORT": "http"}, "NUBE_API_PORT"),
        ({"NUBE_AUDIT_FILE": "/nonexistent/dir/audit.jsonl"}, "NUBE_AUDIT_FILE"),
        ({"NUBE_MAX_WAIT_SECONDS": "999"}, "NUBE_MAX_WAIT_SECONDS"),
    ],
)
def test_prepare_names_the_bad_variable(tmp_path: Path, env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}: "):
        prepare(env, tmp_path)
