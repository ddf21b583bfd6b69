"""The ``nube`` command line (docs/cli.md): typer commands over :class:`NubeClient`.

Modules: :mod:`.app` (the application), :mod:`.core` (consoles, exit codes, one-line
failures), :mod:`.config` (the config file and the environment), :mod:`.render` (tables, JSON,
progress bars), :mod:`.catalog` (commands made from the operation catalog), :mod:`.containers`
(``run``, ``ps``, ``images build``), :mod:`.jobs`, :mod:`.tokens`, :mod:`.login`. Importing
this package builds nothing: :func:`main` does.
"""

from __future__ import annotations

from typing import Any


def main() -> None:
    """The ``nube`` script and ``python -m nube.tools.cli``."""
    from nube.tools.cli.app import app

    app(prog_name="nube")


def __getattr__(name: str) -> Any:
    if name == "app":
        from nube.tools.cli.app import app

        return app
    raise AttributeError(name)
