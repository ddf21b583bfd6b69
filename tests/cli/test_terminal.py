"""``nube`` in a real terminal (tmux): a build, a push to the local registry and a pull back
draw a progress bar from the job's ``progress`` and end with one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, docker, unique
from tests.conftest import need

BAR = "━"


class Terminal:
    """A tmux session on a private server (its own socket), running bash in ``cwd`` with
    ``env``."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.server = f"nubetest-{uuid.uuid4().hex[:8]}"
        size = ["-x", "150", "-y", "50"]
        self.tmux(
            "new-session",
            "-d",
            "-s",
            "cli",
            *size,
            "bash",
            "--norc",
            "--noprofile",
            env=env,
            cwd=cwd,
        )
        self.socket = Path(self.tmux("display-message", "-p", "#{socket_path}").strip())
        self.done = 0

    def tmux(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.server, *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def run(self, command: str, timeout: float = 240) -> tuple[int, str]:
        """Type ``command``, wait for it to end; its exit status and the screen it left."""
        self.done += 1
        marker = f"__done{self.done}="
        self.tmux("send-keys", "-t", "cli", f"clear; {command}; echo {marker}$?", "Enter")
        deadline = time.monotonic() + timeout
        while True:
            screen = self.tmux("capture-pane", "-p", "-t", "cli")
            found = [line for line in screen.splitlines() if line.startswith(marker)]
            if found:
                return int(found[0].removeprefix(marker)), screen
            assert time.monotonic() < deadline, screen
            time.sleep(0.3)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True, timeout=30)
        self.socket.unlink(missing_ok=True)  # tmux leaves it behind


@pytest.fixture
def terminal(docker_cli: Cli) -> Iterator[Terminal]:
    need(shutil.which("tmux") is not None, "tmux")
    term = Terminal({**docker_cli.env, "TERM": "xterm-256color"}, docker_cli.cwd)
    yield term
    term.close()


def _nube() -> str:
    script = Path(sys.executable).parent / "nube"
    return str(script) if script.exists() else f"{sys.executable} -m nube.tools.cli"


def _bar_and(screen: str, what: str, last: str) -> None:
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    bars = [line for line in lines if line.startswith(what) and BAR in line]
    assert bars and "100%" in bars[-1], screen
    assert any(line.startswith(last) for line in lines), screen


def test_build_push_pull_draw_progress_bars(
    terminal: Terminal, docker_cli: Cli, registry: str
) -> None:
    nube = _nube()
    context = docker_cli.cwd / "context"
    context.mkdir()
    (context / "hello.txt").write_text("hello from the terminal\n")
    (context / "Dockerfile").write_text(
        "FROM busybox:latest\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n"
    )
    tag = f"{unique('img')}:v1"
    repository = f"nubecli/{tag.split(':')[0]}"
    pulled = f"{registry}/{repository}:v1"
    try:
        status, screen = terminal.run(f"{nube} images build {context} -t {tag}")
        assert status == 0, screen
        _bar_and(screen, f"build {tag}", "built ")
        assert "step " in screen
        built = next(line for line in screen.splitlines() if line.startswith("built "))
        image_id = built.split()[1]
        assert built == f"built {image_id} ({tag})" and len(image_id) == 12

        status, screen = terminal.run(f"{nube} images push {tag} {registry} {repository} --tag v1")
        assert status == 0, screen
        _bar_and(screen, f"push {tag}", f"pushed {pulled} (sha256:")
        assert "layers" in screen

        status, screen = terminal.run(f"{nube} images rm sha256:{image_id} --force")
        assert status == 0, screen
        status, screen = terminal.run(f"{nube} images pull {pulled}")
        assert status == 0, screen
        _bar_and(screen, f"pull {pulled}", f"pulled {pulled}")

        status, screen = terminal.run(f"{nube} images pull {registry}/nubecli/nope:1")
        assert status == 1, screen
        assert f"error: not_found: image '{registry}/nubecli/nope:1'" in screen
    finally:
        docker("rmi", "-f", tag, pulled)
