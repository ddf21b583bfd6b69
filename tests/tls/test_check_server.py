"""The start-up handshake (:func:`nube.tls.check_server`) against small real servers on
127.0.0.1: a TLS server with a certificate for another host, one that speaks no TLS, and a
closed port."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nube import tls
from nube.certs import create
from nube.settings import SettingsError, load_settings


@contextlib.contextmanager
def serving(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A listener on a free 127.0.0.1 port whose connections ``handle`` serves (one thread)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                handle(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_certificate_for_another_host_is_refused(tmp_path: Path) -> None:
    create(tmp_path, ["redis.example"])  # the server's certificate does not name 127.0.0.1
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")

    def handshake(conn: socket.socket) -> None:
        with server.wrap_socket(conn, server_side=True) as s:
            s.recv(1)

    settings = load_settings({"NUBE_TLS_CA_FILE": str(tmp_path / "ca.crt")})
    with serving(handshake) as port, pytest.raises(SettingsError) as refused:
        tls.check_server(settings, f"rediss://127.0.0.1:{port}/0", timeout=5)
    assert str(refused.value).startswith(f"NUBE_TLS_CA_FILE: the certificate of 127.0.0.1:{port}")
    assert "mismatch" in str(refused.value)


def test_a_server_without_tls_and_a_closed_port(tmp_path: Path) -> None:
    create(tmp_path, ["127.0.0.1"])
    settings = load_settings({"NUBE_TLS_CA_FILE": str(tmp_path / "ca.crt")})

    def plaintext(conn: socket.socket) -> None:
        conn.recv(1024)
        conn.sendall(b"-ERR wrong protocol\r\n")

    with serving(plaintext) as port, pytest.raises(SettingsError) as refused:
        tls.check_server(settings, f"amqps://u:p@127.0.0.1:{port}/v", timeout=5)
    assert str(refused.value).startswith(f"NUBE_BROKER_URL: TLS with 127.0.0.1:{port} failed")
    with socket.socket() as s:  # a port nobody listens on: the services wait as usual
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    tls.check_server(settings, f"rediss://127.0.0.1:{closed}/0", timeout=5)
    tls.check_server(settings, "redis://127.0.0.1:1/0")  # not TLS: nothing to check
