"""``nube keys`` through typer's runner."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from nube.sealing.keyring import Keyring
from nube.tools.cli_keys import keys_app

runner = CliRunner()


def test_generate_rotate_drop_list(tmp_path: Path) -> None:
    line = runner.invoke(keys_app, ["generate"]).output.strip()
    assert Keyring.from_text(line).current.kid.startswith("k")
    path = tmp_path / "keys"
    assert runner.invoke(keys_app, ["generate", "-f", str(path), "--kid", "k1"]).exit_code == 0
    assert runner.invoke(keys_app, ["generate", "-f", str(path)]).exit_code == 2
    res = runner.invoke(keys_app, ["rotate", "-f", str(path), "--kid", "k2"])
    assert res.exit_code == 0 and "sealing key is now k2" in res.output
    assert Keyring.from_files([path]).kids == ["k2", "k1"]
    assert runner.invoke(keys_app, ["list", "-f", str(path)]).output.split() == [
        "k2",
        "(seals)",
        "k1",
    ]
    assert runner.invoke(keys_app, ["drop", "-f", str(path), "k1"]).exit_code == 0
    assert runner.invoke(keys_app, ["drop", "-f", str(path), "k2"]).exit_code == 2
