"""TLS on every connection to Redis and RabbitMQ, from the settings.

A ``rediss://`` ``NUBE_REDIS_URL`` or an ``amqps://`` ``NUBE_BROKER_URL`` turns TLS on for that
server; every client of it then verifies the server's certificate against ``NUBE_TLS_CA_FILE``
(the system's CAs without one), checks that it names the host of the URL, and presents
``NUBE_TLS_CERT_FILE``/``NUBE_TLS_KEY_FILE`` when they are set:

- the job store and everything else on Redis (:func:`nube.redis_client.connect`, with
  :func:`redis_options`; the job waiters' pub/sub shares its pool);
- Celery's broker (``broker_use_ssl``: :func:`redis_options` on Redis, :func:`amqp_options` on
  RabbitMQ) and its result backend (``redis_backend_use_ssl``), hence the agent's reconciler and
  outcome listener and Flower, which use the Celery app's connections.

:func:`check_server` makes one handshake when a service starts, so that a wrong CA, a server
that does not speak TLS or a refused client certificate stops it with one line naming the
setting, instead of retrying forever.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from nube.settings import Settings, SettingsError

REDIS_TLS_SCHEME = "rediss://"
AMQP_TLS_SCHEME = "amqps://"
#: Default ports when a URL names none.
DEFAULT_PORTS = {"rediss": 6379, "amqps": 5671}
#: How long :func:`check_server` listens after the handshake for the server refusing the client
#: certificate (TLS 1.3 sends that refusal after the client has finished its handshake).
REFUSAL_WAIT = 0.2


def redis_tls(settings: Settings) -> bool:
    """Whether the Redis of ``NUBE_REDIS_URL`` (jobs, results, and the broker without
    ``NUBE_BROKER_URL``) is reached over TLS."""
    return settings.redis_url.startswith(REDIS_TLS_SCHEME)


class _MaskedUrlWarning(logging.Filter):
    """Drops kombu's "rediss with no ssl options, defaulting to insecure" warning.

    Celery masks the broker URL for ``inspect conf`` (which Flower asks every worker for) with
    ``kombu.Connection(url).as_uri()``: a ``Connection`` object made without options and never
    connected, which logs that warning. Every connection nube opens has the options of
    :func:`redis_options`; one without would present no client certificate and be refused by
    a server that requires them (``tls-auth-clients yes``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "with no ssl options" not in record.getMessage()


_FILTER = _MaskedUrlWarning()


def quiet_masked_url_warning() -> None:
    """Install :class:`_MaskedUrlWarning` on kombu's connection logger (once)."""
    logger = logging.getLogger("kombu.connection")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def redis_servers(settings: Settings) -> list[str]:
    """The Redis servers a service reaches first, as ``rediss://`` URLs for
    :func:`check_server`: the sentinels on Sentinel (they name the primary), else the URL's."""
    if settings.sentinel_addresses:
        return [f"rediss://{host}:{port}" for host, port in settings.sentinel_addresses]
    return [settings.redis_url]


def amqp_tls(settings: Settings) -> bool:
    """Whether the RabbitMQ broker of ``NUBE_BROKER_URL`` is reached over TLS."""
    return (settings.broker_url or "").startswith(AMQP_TLS_SCHEME)


def _files(settings: Settings) -> tuple[str | None, str | None, str | None]:
    def s(path: object) -> str | None:
        return None if path is None else str(path)

    return s(settings.tls_ca_file), s(settings.tls_cert_file), s(settings.tls_key_file)


def redis_options(settings: Settings) -> dict[str, Any]:
    """redis-py's ``ssl_*`` arguments (also Celery's ``broker_use_ssl`` and
    ``redis_backend_use_ssl`` on Redis) for a ``rediss://`` URL; ``{}`` for ``redis://``."""
    if not redis_tls(settings):
        return {}
    ca, cert, key = _files(settings)
    return {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_check_hostname": True,
        "ssl_ca_certs": ca,
        "ssl_certfile": cert,
        "ssl_keyfile": key,
    }


def amqp_options(settings: Settings) -> dict[str, Any]:
    """py-amqp's ``ssl`` options (Celery's ``broker_use_ssl`` on RabbitMQ) for an ``amqps://``
    URL; ``{}`` otherwise. The server's name is the URL's host (SNI, and checked)."""
    if not amqp_tls(settings):
        return {}
    ca, cert, key = _files(settings)
    options: dict[str, Any] = {
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": urlsplit(settings.broker_url).hostname,
        "ca_certs": ca,
    }
    if cert:
        options |= {"certfile": cert, "keyfile": key}
    return options


def client_context(settings: Settings) -> ssl.SSLContext:
    """An SSL context as the clients make it: the server verified, its name checked."""
    ca, cert, key = _files(settings)
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def check_server(settings: Settings, url: str, timeout: float = 5.0) -> None:
    """One TLS handshake with the server of ``url`` (``rediss://`` or ``amqps://``; nothing for
    other schemes): ``SettingsError`` naming the setting when the server's certificate is not
    trusted or not for its host, when it does not speak TLS, or when it refuses the client's
    certificate. An unreachable server passes: the services wait for it as they always do."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        return
    host = parts.hostname or "localhost"
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    where = f"{host}:{port}"
    variable = "NUBE_REDIS_URL" if parts.scheme == "rediss" else "NUBE_BROKER_URL"
    try:
        context = client_context(settings)
    except (OSError, ssl.SSLError) as e:
        raise SettingsError(f"NUBE_TLS_CA_FILE/NUBE_TLS_CERT_FILE/KEY_FILE: {_reason(e)}") from e
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return  # not reachable now: the services wait for it as usual
    try:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.settimeout(REFUSAL_WAIT)
            with contextlib.suppress(TimeoutError):
                tls.recv(1)  # a server refusing our certificate says so now
    except ssl.SSLCertVerificationError as e:
        raise SettingsError(
            f"NUBE_TLS_CA_FILE: the certificate of {where} ({variable}) is not trusted: "
            f"{e.verify_message}"
        ) from e
    except ssl.SSLError as e:
        reason = str(e.reason or e).upper()
        if "CERTIFICATE_REQUIRED" in reason and not settings.tls_cert_file:
            raise SettingsError(
                f"NUBE_TLS_CERT_FILE: {where} ({variable}) requires a client certificate "
                "(set NUBE_TLS_CERT_FILE and NUBE_TLS_KEY_FILE)"
            ) from e
        if "CERTIFICATE" in reason or "UNKNOWN_CA" in reason:
            raise SettingsError(
                f"NUBE_TLS_CERT_FILE: {where} ({variable}) refused the client certificate "
                f"({_reason(e)})"
            ) from e
        raise SettingsError(f"{variable}: TLS with {where} failed: {_reason(e)}") from e
    except OSError as e:
        raise SettingsError(
            f"{variable}: TLS with {where} failed ({_reason(e)}): does it speak TLS there?"
        ) from e
    finally:
        raw.close()


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or getattr(e, "strerror", None)
    return str(reason or e)
