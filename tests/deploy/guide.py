"""The multi-host guide's shell blocks, read from docs/operations.md as written.

A runnable block is a fenced ``sh`` block right after a line ``<!-- guide: HOST -->`` (``control``,
``worker``, ``copy`` or ``swarm``), both indented alike (inside a list item too); :func:`steps`
returns them in the document's order, dedented.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"

_BLOCK = re.compile(r"^( *)<!-- guide: (\w+) -->\n\1```sh\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Step:
    host: str
    script: str

    @property
    def title(self) -> str:
        """The block's first line, shortened in the middle, for messages."""
        line = self.script.strip().splitlines()[0]
        return line if len(line) <= 100 else f"{line[:45]} ... {line[-50:]}"


def steps(text: str | None = None) -> list[Step]:
    text = OPERATIONS.read_text() if text is None else text
    return [Step(m.group(2), textwrap.dedent(m.group(3))) for m in _BLOCK.finditer(text)]
