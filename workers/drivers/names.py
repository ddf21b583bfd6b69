"""Tenant-scoped names: the one place a user's name meets the backend's.

A name is unique per tenant, as a cloud project's server names are: two tenants may each have a
container, network, volume or VM called ``web``. The backend (a Docker engine, a libvirt
connection) has one namespace for everyone, so the drivers give it :func:`backend_name`, the
user's name behind a short, stable prefix of the tenant (``n<8 hex of sha256(tenant)>-web``),
and show :func:`user_name` back. Every name a driver returns or reports in an error is the
user's; the prefix is valid wherever the user's name is (Docker's ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``
and libvirt's names) and adds :data:`PREFIX_LENGTH` characters.

A backend name without the caller's prefix (made outside nube, or chosen by the engine: an
unnamed container's ``eager_turing``, an anonymous volume's hex name) is shown as it is.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from nube.errors import Conflict, NubeError

T = TypeVar("T")

PREFIX_LENGTH = 10
"""``n`` + 8 hex digits + ``-``."""


def tenant_prefix(tenant: str) -> str:
    """``n<first 8 hex digits of sha256(tenant)>-``: what every backend name of ``tenant``
    starts with."""
    return f"n{hashlib.sha256(tenant.encode()).hexdigest()[:8]}-"


def backend_name(tenant: str, name: str) -> str:
    """The backend's name of ``tenant``'s resource called ``name``."""
    return tenant_prefix(tenant) + name


def user_name(name: str, tenant: str | None) -> str:
    """The name ``tenant`` gave the resource the backend calls ``name`` (``name`` itself when it
    does not carry the tenant's prefix). ``tenant`` is the resource's owner (its label or
    metadata), so an admin sees each tenant's own name."""
    if tenant is not None and name.startswith(prefix := tenant_prefix(tenant)):
        return name[len(prefix) :]
    return name


def unscoped(error: NubeError, tenant: str) -> NubeError:
    """``error`` with ``tenant``'s prefix taken out of its message and details (a backend's
    own message names what it holds by backend name: ``remove n1a2b3c4d-data: volume is in
    use``). Changed in place; returned for ``raise unscoped(err, ...)``."""
    prefix = tenant_prefix(tenant)
    if prefix in error.message:
        error.message = error.message.replace(prefix, "")
        error.args = (error.message,)
    for key, value in error.details.items():
        if isinstance(value, str) and prefix in value:
            error.details[key] = value.replace(prefix, "")
    return error


def unscoping(operations: Iterable[str]) -> Callable[[type[T]], type[T]]:
    """Class decorator: the driver methods named in ``operations`` raise their errors
    :func:`unscoped` for the tenant of their :class:`~workers.drivers.base.JobContext`."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(self: Any, params: Any, ctx: Any) -> Any:
            try:
                return method(self, params, ctx)
            except NubeError as err:
                raise unscoped(err, ctx.tenant) from err.__cause__

        return call

    def decorate(cls: type[T]) -> type[T]:
        for name in operations:
            setattr(cls, name, wrap(getattr(cls, name)))
        return cls

    return decorate


def only_one(found: list[T], kind: str, name: str) -> T | None:
    """What an admin's name means across tenants: the one resource of any tenant called
    ``name``; ``None`` when none is; ``Conflict`` when several tenants have one (the admin then
    names it by its backend name)."""
    if len(found) > 1:
        raise Conflict(
            f"several tenants have a {kind} called '{name}': name it by its backend name "
            f"(n<tenant tag>-{name})",
            kind=kind,
            name=name,
        )
    return found[0] if found else None
