"""The import rules of the layout (docs/architecture.md, "Layout").

``agents/`` holds the relay alone: what every process loads (settings, sealing, audit, the
broker) is in ``nube/``, so the API, the workers and the shared library never import the agent,
not even lazily inside a function, nor through a class path string that Celery imports for
them (``"agents.x:Y"``). The drivers stand on their own: a module under ``workers/drivers/``
imports nothing of ``workers`` outside ``workers.drivers``. The tools (``nube/tools/``: the
command line, the client, the local stack, the Flower launcher) stand apart from the library: no
service imports them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: A class path as Celery and kombu resolve it (``symbol_by_name``): ``pkg.module:Name``.
CLASS_PATH = re.compile(r"^[A-Za-z_]\w*(\.\w+)*:\w+$")


def modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _package(path: Path) -> list[str]:
    """The package a module belongs to (an ``__init__.py``'s own): where ``.`` points."""
    return list(path.relative_to(ROOT).parts[:-1])


def _from_base(node: ast.ImportFrom, package: list[str]) -> str:
    if not node.level:
        return node.module or ""
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(source: str, package: list[str]) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of everything ``source`` (a module of ``package``) imports, at
    any depth, and of every class path string it holds; ``from a import b`` yields ``a.b``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, package)
            yield from ((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Constant) and CLASS_PATH.match(str(node.value)):
            yield node.lineno, str(node.value).replace(":", ".")


def imported(path: Path) -> Iterator[tuple[int, str]]:
    return imports_of(path.read_text(), _package(path))


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(paths: list[Path], forbidden: str, allowed: str | None = None) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in paths
        for line, name in imported(path)
        if _within(name, forbidden) and not (allowed and _within(name, allowed))
    ]


def test_api_workers_and_the_shared_library_never_import_the_agent() -> None:
    assert violations(modules("api", "workers", "nube"), "agents") == []


def test_drivers_import_nothing_of_workers_outside_the_drivers() -> None:
    assert violations(modules("workers/drivers"), "workers", "workers.drivers") == []


def test_no_service_imports_the_tools() -> None:
    tools = ROOT / "nube" / "tools"
    services = [p for p in modules("api", "workers", "agents", "nube") if tools not in p.parents]
    assert violations(services, "nube.tools") == []


def test_the_rule_sees_every_kind_of_import() -> None:
    source = (
        "import agents\n"
        "def f():\n"
        "    from agents.relay import Relay\n"
        "    from .. import runner\n"
        "    return 'agents.events:SealedEvents'\n"
    )
    names = {name for _, name in imports_of(source, ["workers", "drivers"])}
    assert names == {"agents", "agents.relay.Relay", "workers.runner", "agents.events.SealedEvents"}
