"""The libvirt connection: opened lazily, reopened after a loss, errors translated.

Every driver call runs as ``connection.run(fn)`` where ``fn`` takes a ``virConnect``. A lost
connection (daemon restarted, socket closed) is dropped, reopened and ``fn`` is retried with
backoff; when that keeps failing the call raises :class:`~nube.errors.BackendUnavailable`. Any
other ``libvirtError`` becomes a :mod:`nube.errors` leaf here, so none leaves the driver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import libvirt

from nube.errors import BackendFailed, BackendUnavailable, Conflict, InvalidRequest, NotFound

log = logging.getLogger(__name__)
T = TypeVar("T")


def _codes(*names: str) -> frozenset[int]:
    """libvirt error codes by name (names missing from an older binding are skipped)."""
    return frozenset(getattr(libvirt, n) for n in names if hasattr(libvirt, n))


NOT_FOUND_KINDS: dict[int, str] = {
    code: kind
    for name, kind in (
        ("VIR_ERR_NO_DOMAIN", "vm"),
        ("VIR_ERR_NO_DOMAIN_SNAPSHOT", "snapshot"),
        ("VIR_ERR_NO_STORAGE_POOL", "storage_pool"),
        ("VIR_ERR_NO_STORAGE_VOL", "volume"),
        ("VIR_ERR_NO_NETWORK", "vm_network"),
    )
    if (code := getattr(libvirt, name, None)) is not None
}
CONFLICT = _codes(
    "VIR_ERR_OPERATION_INVALID",
    "VIR_ERR_STORAGE_VOL_EXIST",
    "VIR_ERR_STORAGE_POOL_BUILT",
    "VIR_ERR_DOM_EXIST",
    "VIR_ERR_NETWORK_EXIST",
)
INVALID = _codes(
    "VIR_ERR_XML_ERROR",
    "VIR_ERR_INVALID_ARG",
    "VIR_ERR_CONFIG_UNSUPPORTED",
    "VIR_ERR_NO_SUPPORT",
    "VIR_ERR_OPERATION_UNSUPPORTED",
    "VIR_ERR_ARGUMENT_UNSUPPORTED",
    "VIR_ERR_INVALID_MAC",
)
#: Codes that mean the connection itself is gone (cf. nova's ``is_connection_error``).
CONNECTION = _codes("VIR_ERR_NO_CONNECT", "VIR_ERR_INVALID_CONN", "VIR_ERR_AUTH_UNAVAILABLE")
_RPC_DOMAINS = _codes("VIR_FROM_REMOTE", "VIR_FROM_RPC")
_RPC_CODES = _codes("VIR_ERR_SYSTEM_ERROR", "VIR_ERR_INTERNAL_ERROR", "VIR_ERR_RPC")


def is_connection_error(err: libvirt.libvirtError) -> bool:
    """Whether ``err`` means the daemon is unreachable (retry on a new connection)."""
    code, domain = err.get_error_code(), err.get_error_domain()
    return code in CONNECTION or (domain in _RPC_DOMAINS and code in _RPC_CODES)


def translate(err: libvirt.libvirtError, **details: Any) -> Exception:
    """The :mod:`nube.errors` leaf for a libvirt error that is not a lost connection."""
    code, message = err.get_error_code(), err.get_error_message() or str(err)
    if code in NOT_FOUND_KINDS:
        return NotFound(message, kind=NOT_FOUND_KINDS[code], **details)
    if code in CONFLICT or "already exists" in message:
        return Conflict(message, **details)
    if code in INVALID:
        return InvalidRequest(message, **details)
    return BackendFailed(reason=message, libvirt_code=code, **details)


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; errors are raised and handled here."""


class LibvirtConnection:
    """One lazily opened, self-healing connection to ``uri`` (thread-safe)."""

    def __init__(
        self,
        uri: str,
        attempts: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.uri = uri
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._sleep = sleep
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.RLock()
        libvirt.registerErrorHandler(_quiet, None)

    def run(self, fn: Callable[[libvirt.virConnect], T]) -> T:
        """Run ``fn`` on a live connection; reconnect and retry on loss, translate errors."""
        last: libvirt.libvirtError | None = None
        for attempt in range(self.attempts):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            try:
                with self._lock:
                    return fn(self._connect())
            except libvirt.libvirtError as err:
                if not is_connection_error(err):
                    raise translate(err) from err
                log.warning("libvirt connection to %s lost (%s), retrying", self.uri, err)
                last = err
                self.close()
        raise BackendUnavailable(backend="libvirt", uri=self.uri) from last

    def _connect(self) -> libvirt.virConnect:
        if self._conn is not None and self._alive(self._conn):
            return self._conn
        self.close()
        self._conn = libvirt.open(self.uri)
        return self._conn

    @staticmethod
    def _alive(conn: libvirt.virConnect) -> bool:
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    def close(self) -> None:
        """Drop the connection; the next call opens a new one."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                log.debug("closing a dead libvirt connection failed", exc_info=True)
