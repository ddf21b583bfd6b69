"""``nube certs create`` and the TLS options every client gets from the settings."""

from __future__ import annotations

import ipaddress
import ssl
import stat
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from nube import redis_transport, tls
from nube.broker import make_celery
from nube.settings import load_settings
from nube.tools.cli.app import app
from nube.tools.devstack import ROOT, prepare, settings_lines

runner = CliRunner()
FILES = ["ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key"]


def nube(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``nube`` command as users run it."""
    return subprocess.run(
        [sys.executable, "-m", "nube.tools.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_create_writes_a_ca_a_server_and_a_client_certificate(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    done = nube("certs", "create", str(out), "--host", "10.213.0.1", "--host", "broker.example")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["wrote", str(out / f)] for f in FILES]
    for name in FILES:
        mode = stat.S_IMODE((out / name).stat().st_mode)
        assert mode == (0o600 if name.endswith(".key") else 0o644), name
    ca, server, client = cert(out / "ca.crt"), cert(out / "server.crt"), cert(out / "client.crt")
    server.verify_directly_issued_by(ca)
    client.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.213.0.1")]
    assert sans.get_values_for_type(x509.DNSName) == ["broker.example"]
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    # what Python's TLS clients check: the chain and the host name
    context = ssl.create_default_context(cafile=str(out / "ca.crt"))
    context.load_cert_chain(out / "client.crt", out / "client.key")


def test_create_again_keeps_the_ca_and_reissues(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert runner.invoke(app, ["certs", "create", str(out), "--host", "a.example"]).exit_code == 0
    ca_before, server_before = (out / "ca.crt").read_bytes(), cert(out / "server.crt")
    done = runner.invoke(app, ["certs", "create", str(out), "--host", "b.example"])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[0].startswith(f"kept {out / 'ca.crt'}")
    assert (out / "ca.crt").read_bytes() == ca_before
    server = cert(out / "server.crt")
    assert server.serial_number != server_before.serial_number
    server.verify_directly_issued_by(cert(out / "ca.crt"))
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["b.example"]


def test_errors_are_one_line(tmp_path: Path) -> None:
    half = tmp_path / "half"
    half.mkdir()
    (half / "ca.crt").write_text("junk")
    cases = [
        (["certs", "create", str(tmp_path / "x")], "give the server's host names"),
        (["certs", "create", str(tmp_path / "x"), "--host", "no such"], "not a host name"),
        (["certs", "create", "/etc/hostname", "--host", "a"], "is not a directory"),
        (["certs", "create", str(half), "--host", "a"], "ca.key is missing"),
    ]
    for args, words in cases:
        done = runner.invoke(app, args)
        assert done.exit_code == 2, args
        assert done.stderr.startswith("nube certs: ") and words in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    (half / "ca.key").write_text("junk")
    done = runner.invoke(app, ["certs", "create", str(half), "--host", "a"])
    assert done.exit_code == 2 and "not a PEM certificate" in done.stderr, done.stderr


def test_options_follow_the_url_schemes(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    assert runner.invoke(app, ["certs", "create", str(pki), "--host", "127.0.0.1"]).exit_code == 0
    files = {
        "NUBE_TLS_CA_FILE": str(pki / "ca.crt"),
        "NUBE_TLS_CERT_FILE": str(pki / "client.crt"),
        "NUBE_TLS_KEY_FILE": str(pki / "client.key"),
    }
    plain = load_settings({"NUBE_BROKER_URL": "amqp://u:p@h/v", **files})
    assert tls.redis_options(plain) == {} and tls.amqp_options(plain) == {}
    secure = load_settings(
        {
            "NUBE_REDIS_URL": "rediss://10.0.0.5:6380/0",
            "NUBE_BROKER_URL": "amqps://u:p@broker.example:5671/v",
            **files,
        }
    )
    assert tls.redis_options(secure) == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_check_hostname": True,
        "ssl_ca_certs": files["NUBE_TLS_CA_FILE"],
        "ssl_certfile": files["NUBE_TLS_CERT_FILE"],
        "ssl_keyfile": files["NUBE_TLS_KEY_FILE"],
    }
    assert tls.amqp_options(secure) == {
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": "broker.example",
        "ca_certs": files["NUBE_TLS_CA_FILE"],
        "certfile": files["NUBE_TLS_CERT_FILE"],
        "keyfile": files["NUBE_TLS_KEY_FILE"],
    }
    # Celery's broker and result backend on a rediss:// Redis get the same options, and the
    # broker keeps nube's per-channel transport (whose connections are then SSL ones)
    celery = make_celery(
        load_settings({"NUBE_REDIS_URL": "rediss://10.0.0.5:6380/0", **files}), "t"
    )
    assert (
        celery.conf.broker_use_ssl == celery.conf.redis_backend_use_ssl == tls.redis_options(secure)
    )
    assert celery.conf.broker_transport == redis_transport.TRANSPORT


def test_make_up_with_tls_makes_its_certificates(tmp_path: Path) -> None:
    """``NUBE_TLS=1 make up``: certificates in ``<workdir>/tls``, Redis on a TLS port only, the
    services on ``rediss://`` with the client certificate."""
    stack, settings = prepare({"NUBE_TLS": "1"}, tmp_path)
    assert stack.tls_dir == tmp_path / "tls"
    assert sorted(p.name for p in stack.tls_dir.iterdir()) == sorted(FILES)
    assert settings.redis_url == f"rediss://127.0.0.1:{stack.redis_port}/0"
    assert settings.tls_ca_file == tmp_path / "tls" / "ca.crt"
    assert settings.tls_cert_file == tmp_path / "tls" / "client.crt"
    config = stack.redis_config()
    assert 'port "0"' in config and f'tls-port "{stack.redis_port}"' in config
    assert 'tls-auth-clients "yes"' in config
    assert any("tls" in line for line in settings_lines(stack, settings))
    plain, _ = prepare({}, tmp_path / "plain")
    assert plain.tls_dir is None and plain.redis_url.startswith("redis://")
