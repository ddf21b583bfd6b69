"""Where the CLI finds nube: the environment, the config file ``nube login`` writes, and the
``.nube/local.env`` that ``make up`` writes in the project directory.

The URL is the first of ``NUBE_URL``, the config file's ``url``, ``.nube/local.env``'s
``NUBE_URL``. The token is ``NUBE_TOKEN``, else the token stored next to that same URL (a token
kept for one server is never sent to another).
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: What ``make up`` writes (relative to the directory the CLI runs in).
LOCAL_ENV = Path(".nube/local.env")


class ConfigError(Exception):
    """The config file cannot be read or written; the message says why, in one line."""


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$NUBE_CONFIG``, else ``$XDG_CONFIG_HOME/nube/config.toml`` (``~/.config/...``)."""
    env = os.environ if env is None else env
    if env.get("NUBE_CONFIG"):
        return Path(env["NUBE_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "nube" / "config.toml"


def read_config(path: Path) -> dict[str, str]:
    """The config file's ``url`` and ``token`` (missing file: empty)."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read the config file {path}: {e}") from None
    return {k: v for k, v in data.items() if k in ("url", "token") and isinstance(v, str)}


def write_config(path: Path, values: Mapping[str, str]) -> None:
    """Write ``values`` as TOML, readable by its owner only (mode 600; its directory 700 when
    made here); replaced atomically, so no other mode is ever seen."""
    text = "# written by `nube login`\n" + "".join(
        f"{key} = {_toml_string(value)}\n" for key, value in values.items() if value
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
        try:
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise ConfigError(f"cannot write the config file {path}: {e.strerror or e}") from None


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's string escapes are all valid TOML)."""
    return json.dumps(value)


def local_env(path: Path = LOCAL_ENV) -> dict[str, str]:
    """``KEY=VALUE`` lines of ``make up``'s ``.nube/local.env`` (missing: empty)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


@dataclass(frozen=True)
class Target:
    """The nube the CLI talks to, and where each half came from."""

    url: str | None
    token: str | None
    url_from: str
    token_from: str


def resolve(env: Mapping[str, str] | None = None) -> Target:
    """The URL and token, by the precedence in this module's docstring."""
    env = os.environ if env is None else env
    path = config_path(env)
    sources = [
        ("NUBE_URL/NUBE_TOKEN", env.get("NUBE_URL"), env.get("NUBE_TOKEN")),
        (str(path), *_pair(read_config(path), "url", "token")),
        (str(LOCAL_ENV), *_pair(local_env(), "NUBE_URL", "NUBE_TOKEN")),
    ]
    url, url_from = next(((u, name) for name, u, _ in sources if u), (None, "nowhere"))
    if env.get("NUBE_TOKEN"):
        return Target(url, env["NUBE_TOKEN"], url_from, "NUBE_TOKEN")
    for name, u, token in sources[1:]:
        if token and (not u or _same(u, url)):
            return Target(url, token, url_from, name)
    return Target(url, None, url_from, "nowhere")


def _pair(values: Mapping[str, str], url: str, token: str) -> tuple[str | None, str | None]:
    return values.get(url) or None, values.get(token) or None


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").rstrip("/") == (b or "").rstrip("/")


def settings_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for commands that read nube's settings (Redis: ``tokens --redis``,
    ``audit verify``): ``.nube/local.env``'s ``NUBE_*`` values under the environment's."""
    env = os.environ if env is None else env
    return {**local_env(), **env}
