"""What every command shares: the consoles, the exit codes, the client, and how a failure
becomes one line on stderr.

Exit codes (docs/cli.md): 0 done; 1 the request was refused or the job failed (a problem
answer, ``error: <code>: <detail>``); 2 a usage error (bad option or value, nothing
configured); 3 nube could not be reached or failed itself (connection, time-out, an answer that
is not problem+json, a 5xx that no job caused; also Redis for ``tokens --redis`` and
``audit verify``); 124 ``jobs wait --timeout`` ran out; 130 interrupted. ``nube run`` and
``nube containers exec`` exit with the container's exit code once it ran.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import requests
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from nube.errors import NubeError
from nube.settings import SettingsError
from nube.tools.cli.config import ConfigError, resolve
from nube.tools.client import ApiError, NubeClient

OK, FAILED, USAGE, UNREACHABLE, TIMED_OUT, INTERRUPTED = 0, 1, 2, 3, 124, 130

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
if not out.is_terminal:  # a pipe or a file: tables as wide as their content, never cut
    out.width = 4096


def fail(message: object, code: int = FAILED) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with ``code``."""
    line = " ".join(str(message).split())
    err.print(Text(f"error: {line}", style="red" if err.is_terminal else ""), soft_wrap=True)
    raise typer.Exit(code)


def usage(message: object) -> NoReturn:
    fail(message, USAGE)


def client() -> NubeClient:
    """A client of the configured nube, or a usage error saying how to configure one."""
    target = resolve()
    if not target.url:
        usage("no nube URL: run `nube login URL`, or set NUBE_URL (see `nube config`)")
    if not target.token:
        usage(f"no token for {target.url}: run `nube login`, or set NUBE_TOKEN")
    return NubeClient(target.url, target.token)


def api_failure(e: ApiError) -> NoReturn:
    """A problem answer: ``error: <code>: <detail>``; 3 when nube itself failed (no
    problem+json, or a 5xx no job caused), else 1."""
    detail = str(e.problem.get("detail") or e.problem.get("title") or "").strip()
    if e.code == "unknown":  # not problem+json: not nube, or something in front of it
        fail(f"unexpected answer: HTTP {e.status}: {detail or 'no detail'}", UNREACHABLE)
    server = e.status >= 500 and "job" not in e.problem
    fail(f"{e.code}: {detail}", UNREACHABLE if server else FAILED)


def unreachable(e: requests.RequestException) -> NoReturn:
    url = e.request.url if e.request is not None and e.request.url else "nube"
    base = re.sub(r"(https?://[^/]+).*", r"\1", str(url))
    if isinstance(e, requests.Timeout):
        reason = "timed out"
    else:
        found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(e))
        reason = found[1].strip() if found else type(e).__name__
    fail(f"cannot reach nube at {base}: {reason}", UNREACHABLE)


@contextmanager
def failures() -> Iterator[None]:
    """Turn what can go wrong talking to nube (or Redis) into one line and an exit code."""
    try:
        yield
    except ApiError as e:
        api_failure(e)
    except requests.RequestException as e:
        unreachable(e)
    except NubeError as e:  # raised here, not answered (tokens --redis)
        fail(f"{e.code}: {e.message}")
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        usage(f"{'.'.join(str(p) for p in first['loc']) or 'value'}: {first['msg']}")
    except (SettingsError, ConfigError) as e:
        usage(e)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(INTERRUPTED) from None
    except OSError as e:  # a local file (a keyring, an archive to write ...)
        fail(f"{e.strerror or e}: {e.filename}" if e.filename else e)
    except Exception as e:
        redis_failure(e)
        raise


def redis_failure(e: Exception) -> None:
    """Redis (``tokens --redis``, ``audit verify``) refused or unreachable: one line, exit 3.
    (``redis`` is imported by the commands that use it only: it is slow to import.)"""
    redis = sys.modules.get("redis")
    if redis is None or not isinstance(e, redis.RedisError):
        return
    if isinstance(e, redis.AuthenticationError):
        fail(f"Redis refused the password: {e}", UNREACHABLE)
    fail(f"Redis: {e}", UNREACHABLE)


class NubeGroup(TyperGroup):
    """The root group: every command runs inside :func:`failures` (so no traceback reaches
    the user for a refused request, an unreachable server or a bad setting)."""

    def invoke(self, ctx: Any) -> Any:
        if os.environ.get("NUBE_DEBUG"):
            return super().invoke(ctx)
        with failures():
            return super().invoke(ctx)


def display(renderable: Any) -> None:
    """A table on stdout: as rich draws it on a terminal; elsewhere without the padding that
    rich leaves at the end of each line."""
    if out.is_terminal:
        out.print(renderable)
        return
    with out.capture() as captured:
        out.print(renderable)
    stdout_text("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def stdout_text(text: str) -> None:
    """Write program output as it is (no markup, no wrapping)."""
    sys.stdout.write(text)
    sys.stdout.flush()
