"""``python -m agents --check``: the settings and the policy file, checked without starting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents", "--check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_good_policy_passes_and_nothing_starts(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("version: 1\n")
    done = check(NUBE_POLICY_FILE=str(tmp_path / "policy.yaml"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert check().returncode == 0  # no policy file: every image allowed


def test_a_bad_policy_stops_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("version: 1\ndefault: {containers: {imagez: []}}\n")
    done = check(NUBE_POLICY_FILE=str(tmp_path / "policy.yaml"))
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    path = tmp_path / "policy.yaml"
    assert line.startswith(f"nube: invalid setting NUBE_POLICY_FILE: the policy file {path} ")
    assert "imagez" in line
