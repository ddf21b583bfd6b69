"""ruff and mypy stay clean: the style and type checks are part of the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean() -> None:
    check = run(str(BIN / "ruff"), "check", ".")
    assert check.returncode == 0, check.stdout
    fmt = run(str(BIN / "ruff"), "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout


def test_mypy_is_clean() -> None:
    result = run(str(BIN / "mypy"), "nube", "api", "workers", "agents", "tests", "bench")
    assert result.returncode == 0, result.stdout
