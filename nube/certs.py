"""A deployment's TLS certificates: its own CA, a server certificate and a client certificate.

What ``nube certs create`` writes (:func:`create`): ``ca.crt``/``ca.key`` (made once, then
reused, so that every certificate of the deployment chains to one CA), ``server.crt``/
``server.key`` for Redis and RabbitMQ (the host names and IP addresses clients reach them by
as subject alternative names) and ``client.crt``/``client.key`` for nube's services. ECDSA P-256
keys, PEM files; the keys are mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
DEFAULT_DAYS = 825
CLIENT_NAME = "nube-client"
#: A DNS name (letters, digits, ``-``, ``.``; ``*.`` first allowed) or, checked first, an IP.
_DNS = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?$")

Key = ec.EllipticCurvePrivateKey


class CertsError(Exception):
    """Why the certificates could not be made (one line)."""


@dataclass(frozen=True)
class Written:
    path: Path
    what: str
    kept: bool = False


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nube"),
            x509.NameAttribute(NameOID.COMMON_NAME, common[:64]),
        ]
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def subject_names(hosts: list[str]) -> list[x509.GeneralName]:
    """``hosts`` as subject alternative names: IP addresses, else DNS names."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if not _DNS.match(host):
            raise CertsError(f"--host {host!r}: not a host name or IP address")
        names.append(x509.DNSName(host.rstrip(".")))
    if not names:
        raise CertsError("give the server's host names or addresses with --host")
    return names


def _builder(subject: x509.Name, issuer: x509.Name, key: Key, days: int) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def make_ca(name: str = "nube deployment CA") -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name(name), _name(name), key, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca: tuple[x509.Certificate, Key],
    common: str,
    days: int,
    server_names: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, Key]:
    """A leaf certificate signed by ``ca``: a server's (with ``server_names``) or a client's."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(common), ca_cert.subject, key, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(server_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def load_ca(directory: Path) -> tuple[x509.Certificate, Key] | None:
    """The CA in ``directory`` (``ca.crt``, ``ca.key``), or ``None`` if there is none."""
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if not cert_path.exists() and not key_path.exists():
        return None
    if not (cert_path.exists() and key_path.exists()):
        missing = key_path if cert_path.exists() else cert_path
        raise CertsError(f"{missing} is missing (a CA needs both ca.crt and ca.key)")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise CertsError(f"{directory}: ca.crt/ca.key are not a PEM certificate and key") from e
    except OSError as e:
        raise CertsError(f"{directory}: cannot read the CA: {e.strerror}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise CertsError(f"{key_path} is not the key of {cert_path}")
    return cert, key


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, mode)
        f.write(data)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create(directory: Path, hosts: list[str], days: int = DEFAULT_DAYS) -> list[Written]:
    """Write the deployment's CA (unless ``directory`` has one), a server certificate for
    ``hosts`` and a client certificate into ``directory``; what was written, in order."""
    names = subject_names(hosts)
    if days < 1:
        raise CertsError(f"--days {days}: must be at least 1")
    if directory.exists() and not directory.is_dir():
        raise CertsError(f"{directory} is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        existing = load_ca(directory)
        out: list[Written] = []
        if existing is None:
            ca = make_ca()
            _write(directory / "ca.key", _key_pem(ca[1]), 0o600)
            _write(directory / "ca.crt", _pem(ca[0]), 0o644)
            out += [
                Written(directory / "ca.crt", "CA certificate"),
                Written(directory / "ca.key", "CA key"),
            ]
        else:
            ca = existing
            out += [
                Written(directory / "ca.crt", "CA certificate", kept=True),
                Written(directory / "ca.key", "CA key", kept=True),
            ]
        for stem, common, san in (
            ("server", hosts[0], names),
            ("client", CLIENT_NAME, None),
        ):
            cert, key = issue(ca, common, days, san)
            _write(directory / f"{stem}.key", _key_pem(key), 0o600)
            _write(directory / f"{stem}.crt", _pem(cert), 0o644)
            what = f"server certificate for {', '.join(hosts)}" if san else "client certificate"
            out += [
                Written(directory / f"{stem}.crt", what),
                Written(directory / f"{stem}.key", f"{stem} key"),
            ]
        return out
    except OSError as e:
        raise CertsError(f"{e.filename or directory}: {e.strerror}") from e
