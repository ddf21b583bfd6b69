"""Where the CLI finds nube (the config file, the environment, .nube/local.env), ``nube login``,
usage and connection errors, shell completion."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from nube.tools.cli.config import config_path, resolve, write_config
from nube.tools.client import NubeClient
from nube.tools.devstack import free_port
from tests.cli.conftest import Cli, one_line, token_of


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_environment_beats_the_config_file_which_beats_local_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".nube").mkdir()
    (tmp_path / ".nube" / "local.env").write_text("NUBE_URL=http://local:1\nNUBE_TOKEN=t-local\n")
    config = tmp_path / "config.toml"
    env = {"NUBE_CONFIG": str(config)}
    assert (resolve(env).url, resolve(env).token) == ("http://local:1", "t-local")
    write_config(config, {"url": "http://saved:2", "token": "t-saved"})
    assert (resolve(env).url, resolve(env).token) == ("http://saved:2", "t-saved")
    assert resolve(env).token_from == str(config)
    both = resolve({**env, "NUBE_URL": "http://env:3", "NUBE_TOKEN": "t-env"})
    assert (both.url, both.token, both.url_from) == ("http://env:3", "t-env", "NUBE_URL/NUBE_TOKEN")
    # A token is only sent to the URL it was saved with: another URL from the environment
    # gets no token from the file (nor from local.env).
    other = resolve({**env, "NUBE_URL": "http://elsewhere:4"})
    assert (other.url, other.token) == ("http://elsewhere:4", None)
    assert resolve({**env, "NUBE_URL": "http://local:1"}).token == "t-local"
    # NUBE_TOKEN alone goes with the configured URL.
    assert resolve({**env, "NUBE_TOKEN": "t-env"}).url == "http://saved:2"


def test_config_path_and_a_private_file(tmp_path: Path) -> None:
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "nube" / "config.toml"
    assert config_path({"NUBE_CONFIG": str(tmp_path / "c.toml")}) == tmp_path / "c.toml"
    path = tmp_path / "new" / "config.toml"
    path.parent.mkdir()
    path.write_text("url = 'x'\n")
    path.chmod(0o644)
    write_config(path, {"url": 'http://a:1/"q"', "token": "s\\ecret"})
    assert _mode(path) == 0o600
    assert resolve({"NUBE_CONFIG": str(path)}).token == "s\\ecret"
    assert resolve({"NUBE_CONFIG": str(path)}).url == 'http://a:1/"q"'


def test_login_saves_a_checked_token_in_a_mode_600_file(bare: Cli, api: NubeClient) -> None:
    config = Path(bare.env["NUBE_CONFIG"])
    refused = bare("login", api.url, "--token-stdin", input="nube_not-a-token\n")
    assert refused.returncode == 1
    assert one_line(refused.stderr).startswith("error: unauthorized: ")
    assert not config.exists()

    done = bare("login", api.url, "--token-stdin", input=token_of(api) + "\n")
    assert done.returncode == 0, done.stderr
    assert _mode(config) == 0o600 and _mode(config.parent) == 0o700
    assert token_of(api) in config.read_text()

    listed = bare("ps", "--json")  # nothing in the environment: the config file
    assert listed.returncode == 0, listed.stderr
    shown = bare("config").stdout
    assert f"{api.url} (from {config})" in shown and token_of(api) not in shown

    assert bare("logout").returncode == 0
    assert token_of(api) not in config.read_text() and _mode(config) == 0o600
    after = bare("ps")
    assert after.returncode == 2
    assert one_line(after.stderr).startswith(f"error: no token for {api.url}")


def test_usage_errors_exit_2(bare: Cli) -> None:
    nothing = bare("ps")
    assert nothing.returncode == 2
    assert one_line(nothing.stderr).startswith("error: no nube URL: run `nube login URL`")
    missing = bare("containers", "inspect")  # a missing argument: typer's usage message
    assert missing.returncode == 2 and "Missing argument 'ID'" in missing.stderr
    assert bare("containers", "frobnicate").returncode == 2
    # Values are checked as the API checks them, before anything is sent.
    configured = {"NUBE_URL": "http://127.0.0.1:9", "NUBE_TOKEN": "x"}
    bad = bare("containers", "stop", "web", "--timeout", "999", **configured)
    assert bad.returncode == 2
    assert one_line(bad.stderr) == "error: timeout: Input should be less than or equal to 120"
    env = bare("run", "-e", "NOEQUALS", "busybox:latest", **configured)
    assert env.returncode == 2
    assert one_line(env.stderr) == "error: --env: expected KEY=VALUE, got 'NOEQUALS'"


def test_an_unreachable_url_exits_3_with_one_line(bare: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = bare("ps", NUBE_URL=url, NUBE_TOKEN="x")
    assert done.returncode == 3 and done.stdout == ""
    assert one_line(done.stderr) == f"error: cannot reach nube at {url}: Connection refused"
    login = bare("login", url, "--token-stdin", input="x\n")
    assert login.returncode == 3 and "cannot reach nube" in one_line(login.stderr)
    assert not Path(bare.env["NUBE_CONFIG"]).exists()


def test_shell_completion(bare: Cli) -> None:
    script = bare("--show-completion", "bash")
    assert script.returncode == 0
    assert "_NUBE_COMPLETE=complete_bash" in script.stdout
    assert "complete -o default -F _nube_completion nube" in script.stdout
    words = bare(
        _NUBE_COMPLETE="complete_bash", COMP_WORDS="nube vm st", COMP_CWORD="2"
    ).stdout.split()
    assert {"start", "stop"} <= set(words)
    groups = bare(_NUBE_COMPLETE="complete_bash", COMP_WORDS="nube jo", COMP_CWORD="1").stdout
    assert groups.split() == ["jobs"]
