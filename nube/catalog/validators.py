"""Reusable field types for parameter models (names, image references, ...)."""

from __future__ import annotations

import signal
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints


def _not_reserved(key: str) -> str:
    if key.startswith("nube."):
        raise ValueError("label keys starting with 'nube.' are reserved")
    return key


def _no_dotdot(path: str) -> str:
    if ".." in path.split("/"):
        raise ValueError("'..' path segments are not allowed")
    return path


#: A Docker container, network or volume name, as the engine accepts them.
DockerName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")]

#: An image reference: ``[registry[:port]/]name[:tag][@digest]``, lower-case path components.
ImageRef = Annotated[
    str,
    StringConstraints(
        pattern=(
            r"^(?:[a-zA-Z0-9.-]+(?::[0-9]{1,5})?/)?"
            r"[a-z0-9]+(?:[._-]{1,2}[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]{1,2}[a-z0-9]+)*)*"
            r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
        ),
        max_length=255,
    ),
]

#: An environment variable name (POSIX portable).
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=255)]

#: A libvirt object name (domain, pool, volume, network): no markup, no path separators.
LibvirtName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")]

#: A TCP/UDP port.
Port = Annotated[int, Field(ge=1, le=65535)]

#: A resource id as the API accepts it in a path (a name or a hex id).
ResourceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]

#: An image as the REST path names it: an id (``sha256:<hex>`` or a hex prefix) or a
#: ``name[:tag]`` without registry or slashes (a path segment cannot hold a ``/``).
ImageKey = Annotated[
    str,
    StringConstraints(
        pattern=(
            r"^(?:sha256:[a-f0-9]{12,64}|[a-z0-9]+(?:[._-]{1,2}[a-z0-9]+)*"
            r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?)$"
        ),
        max_length=200,
    ),
]

#: A repository path without registry or tag: ``name`` or ``org/name`` (lower case).
RepositoryName = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z0-9]+(?:[._-]{1,2}[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]{1,2}[a-z0-9]+)*)*$",
        max_length=200,
    ),
]

#: An image tag.
ImageTag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]

#: A registry address: ``host[:port]`` (a DNS name or IPv4 address).
RegistryAddress = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?(?::[0-9]{1,5})?$",
        max_length=260,
    ),
]

#: A label key a caller may set; the ``nube.`` prefix is reserved for nube's own labels.
LabelKey = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$"),
    AfterValidator(_not_reserved),
]

#: An absolute path inside a container, without ``..`` segments or control characters.
ContainerPath = Annotated[
    str,
    StringConstraints(pattern=r"^/[^\x00-\x1f]*$", max_length=1024),
    AfterValidator(_no_dotdot),
]

#: A path inside a build context: relative, no empty or ``..`` segments, no control characters.
RelativePath = Annotated[
    str,
    StringConstraints(pattern=r"^[^/\x00-\x1f]+(?:/[^/\x00-\x1f]+)*$", max_length=1024),
    AfterValidator(_no_dotdot),
]

#: A container user: ``name`` or ``uid``, optionally ``:group`` or ``:gid``.
ContainerUser = Annotated[
    str,
    StringConstraints(
        pattern=(
            r"^(?:[a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})"
            r"(?::(?:[a-z_][a-z0-9_-]{0,31}|[0-9]{1,10}))?$"
        )
    ),
]


def _signal(value: object) -> str:
    """Normalise ``KILL`` / ``SIGKILL`` / ``9`` to ``SIGKILL``; reject unknown signals."""
    text = str(value).strip().upper()
    if text.isdigit():
        number = int(text)
        if not 1 <= number <= 64:
            raise ValueError("signal number must be within 1..64")
        return str(number)
    name = text if text.startswith("SIG") else f"SIG{text}"
    if name not in _SIGNAL_NAMES:
        raise ValueError(f"unknown signal {value!r}")
    return name


#: Linux signal names (the engine runs Linux containers); real-time signals go by number.
_SIGNAL_NAMES = frozenset(sig.name for sig in signal.Signals if not sig.name.startswith("SIGRT"))

#: A signal by name (``SIGTERM``, ``TERM``) or number (1..64); normalised to ``SIGTERM`` / ``"9"``.
Signal = Annotated[str, BeforeValidator(_signal)]

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _size(value: object) -> object:
    """Accept a byte count or a string like ``64m`` / ``1g`` (binary units)."""
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("ib").removesuffix("b") or "0"
        unit = text[-1] if text[-1] in _UNITS else ""
        number = text[: -1 if unit else None]
        if not number.isdigit():
            raise ValueError("expected bytes, or a number with a unit: 64m, 1g")
        return int(number) * _UNITS[unit]
    return value


#: A memory size in bytes (at least 6 MiB, the engine's minimum); ``"64m"`` is accepted.
MemoryBytes = Annotated[int, BeforeValidator(_size), Field(ge=6 * 1024**2, le=1024**4)]

#: Base64 text (standard alphabet, padded), the way binary payloads travel in JSON.
BASE64_PATTERN = r"^[A-Za-z0-9+/]*={0,2}$"
