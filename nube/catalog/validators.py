"""Reusable field types for parameter models (names, image references, ...)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

#: A Docker container / network / volume name (as the engine accepts: ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``).
DockerName = Annotated[
    str, StringConstraints(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
]

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
LibvirtName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
]

#: A TCP/UDP port.
Port = Annotated[int, Field(ge=1, le=65535)]

#: A resource id as the API accepts it in a path (a name or a hex id).
ResourceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
