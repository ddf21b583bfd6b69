"""Translate docker-py and transport errors into :mod:`nube.errors` at the driver boundary.

No ``docker.errors`` or ``requests`` exception leaves the Docker driver: every public driver
method runs inside :func:`translated`, and streamed errors (pull, push, build) go through
:func:`from_message`. Transient faults of the engine (socket gone, connection reset, timeout)
become :class:`BackendUnavailable`, which the task layer retries with backoff.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import docker.errors
import requests.exceptions
import urllib3.exceptions

from nube.errors import (
    BackendFailed,
    BackendUnavailable,
    Conflict,
    InvalidRequest,
    NotFound,
    NubeError,
)
from workers.drivers.base import JobContext
from workers.drivers.names import unscoped

#: Engine faults that are worth retrying: the daemon is down, restarting or too slow.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    urllib3.exceptions.ProtocolError,
    ConnectionError,
)

_NOT_FOUND = [
    (re.compile(r"no such container: ?(\S*)", re.I), "container"),
    (re.compile(r"no such image: ?(\S*)", re.I), "image"),
    (re.compile(r"network (\S+) not found", re.I), "network"),
    (re.compile(r"get (\S+): no such volume", re.I), "volume"),
    (
        re.compile(
            r"(?:manifest unknown|repository does not exist|pull access denied"
            r"|not found: manifest|manifest for (\S+) not found)",
            re.I,
        ),
        "image",
    ),
]
_CONFLICT = re.compile(
    r"already in use|already exists|is not running|is paused|is not paused|already paused"
    r"|port is already allocated|address already in use|has active endpoints|is in use"
    r"|not connected|already attached|pool overlaps|predefined network|is restarting"
    r"|cannot remove|conflict",
    re.I,
)
_REGISTRY_DOWN = re.compile(
    r"connection refused|no such host|i/o timeout|tls handshake|server gave http response"
    r"|connection reset|dial tcp|context deadline exceeded",
    re.I,
)
_BAD_INPUT = re.compile(r"processing tar file|invalid tar header|archive/tar|unexpected eof", re.I)

F = TypeVar("F", bound=Callable[..., Any])


def from_message(message: str, kind: str = "resource", id: str = "") -> NubeError:
    """The nube error for an engine or registry message (also used for streamed errors)."""
    for pattern, what in _NOT_FOUND:
        match = pattern.search(message)
        if match:
            found = next((g for g in match.groups() if g), "")
            return NotFound(kind=what if kind == "resource" else kind, id=id or found)
    if _CONFLICT.search(message):
        return Conflict(message)
    if _REGISTRY_DOWN.search(message):
        return BackendUnavailable(backend="registry", reason=message)
    if _BAD_INPUT.search(message):
        return InvalidRequest(message)
    return BackendFailed(reason=message)


def from_api_error(err: docker.errors.APIError, kind: str = "resource", id: str = "") -> NubeError:
    """Map an engine HTTP error by status first, then by its message."""
    message = str(err.explanation or err)
    status = err.status_code or 500
    if status == 404 or isinstance(err, docker.errors.NotFound):
        return NotFound(kind=_kind_of(message, kind), id=id or _id_of(message))
    if status in (409, 403):
        return Conflict(message)
    if status == 400:
        return InvalidRequest(message)
    if status == 503:
        return BackendUnavailable(backend="docker", reason=message)
    return from_message(message, kind, id)


def _kind_of(message: str, default: str) -> str:
    if default != "resource":
        return default
    for pattern, what in _NOT_FOUND:
        if pattern.search(message):
            return what
    return default


def _id_of(message: str) -> str:
    for pattern, _ in _NOT_FOUND:
        match = pattern.search(message)
        if match:
            return next((g for g in match.groups() if g), "")
    return ""


@contextmanager
def translated(kind: str = "resource", id: str = "") -> Iterator[None]:
    """Run a block of engine calls; re-raise any failure as a nube error (cause chained)."""
    try:
        yield
    except NubeError:
        raise
    except docker.errors.APIError as err:
        raise from_api_error(err, kind, id) from err
    except TRANSIENT_ERRORS as err:
        raise BackendUnavailable(backend="docker", reason=str(err)) from err
    except docker.errors.DockerException as err:
        raise _from_docker_exception(err) from err


def _from_docker_exception(err: docker.errors.DockerException) -> NubeError:
    # docker.from_env() wraps an unreachable socket in a bare DockerException.
    text = str(err)
    if "Error while fetching server API version" in text or "Connection" in text:
        return BackendUnavailable(backend="docker", reason=text)
    if isinstance(err, docker.errors.ImageNotFound):
        return NotFound(kind="image", id="")
    return BackendFailed(reason=text)


def translating(method: F) -> F:
    """Decorate a driver method so that only nube errors leave it."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with translated():
                return method(*args, **kwargs)
        except NubeError as err:
            # the engine's messages name the caller's resources by their backend names
            ctx = next((a for a in (*args, *kwargs.values()) if isinstance(a, JobContext)), None)
            raise err if ctx is None else unscoped(err, ctx.tenant) from err.__cause__

    return wrapper  # type: ignore[return-value]


def translate_all(names: frozenset[str]) -> Callable[[type], type]:
    """Class decorator: wrap every method named in ``names`` with :func:`translating`."""

    def decorate(cls: type) -> type:
        for name in names:
            setattr(cls, name, translating(getattr(cls, name)))
        return cls

    return decorate
