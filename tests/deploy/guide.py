"""The multi-host guide's shell blocks, read from docs/operations.md as written.

A runnable block is a fenced ``sh`` block right after a line ``<!-- guide: HOST -->`` (``control``,
``worker``, ``copy`` or ``swarm``); :func:`steps` returns them in the document's order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"

_BLOCK = re.compile(r"^<!-- guide: (\w+) -->\n```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Step:
    host: str
    script: str

    @property
    def title(self) -> str:
        """The block's first command, for messages."""
        return self.script.strip().splitlines()[0][:100]


def steps(text: str | None = None) -> list[Step]:
    text = OPERATIONS.read_text() if text is None else text
    return [Step(m.group(1), m.group(2)) for m in _BLOCK.finditer(text)]
