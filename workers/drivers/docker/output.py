"""Output capping: results carry at most ``OUTPUT_LIMIT`` bytes of text."""

from __future__ import annotations

from nube.catalog.container_models import OUTPUT_LIMIT


def text(data: bytes | None, limit: int = OUTPUT_LIMIT) -> tuple[str, bool]:
    """Decode output, keeping the newest ``limit`` bytes; returns (text, truncated)."""
    raw = data or b""
    cut = len(raw) > limit
    return raw[-limit:].decode("utf-8", errors="replace"), cut


def streams(stdout: bytes | None, stderr: bytes | None) -> dict[str, object]:
    """``{"stdout", "stderr", "truncated"}`` from two byte strings."""
    out, cut_out = text(stdout)
    err, cut_err = text(stderr)
    return {"stdout": out, "stderr": err, "truncated": cut_out or cut_err}
