"""Certificates for the local control plane: one CA, a serving cert, client certs, an SA key.

Nothing here is for production: the keys live in the state directory of one local platform.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)

# client identities: file stem -> (common name, organisations)
CLIENTS: dict[str, tuple[str, list[str]]] = {
    # the local platform's admin also holds every default reviewer role (one person signs for all, locally)
    "admin": ("yunshang-admin", ["system:masters", "yunshang:reviewer:platform", "yunshang:reviewer:security",
                                 "yunshang:reviewer:finance"]),
    "controller-manager": ("system:kube-controller-manager", []),
    "scheduler": ("system:kube-scheduler", []),
    "kwok": ("kwok-controller", ["system:masters"]),
    "prometheus": ("yunshang-prometheus", []),
    "front-proxy-client": ("front-proxy-client", []),
}


def _write_key(path: Path, key) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(cn: str, orgs: list[str] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs or []]
    return x509.Name(attrs)


def _cert(subject, issuer, public_key, signing_key, *, ca=False, server_sans=None, client=False):
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        usages = []
        if server_sans is not None:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            b = b.add_extension(x509.SubjectAlternativeName(server_sans), critical=False)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return b.sign(signing_key, hashes.SHA256())


def ensure_pki(pki: Path, service_ip: str) -> None:
    """Create the CA, serving cert, client certs and SA key pair once; reuse them afterwards."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "ca.crt").exists() and all((pki / f"{c}.crt").exists() for c in CLIENTS):
        return
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("yunshang-local-ca")
    ca = _cert(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    _write_key(pki / "ca.key", ca_key)
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    sans = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.DNSName("kubernetes.default.svc.cluster.local"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address(service_ip)),
    ]
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(_name("kube-apiserver"), ca_name, key.public_key(), ca_key, server_sans=sans)
    _write_key(pki / "apiserver.key", key)
    (pki / "apiserver.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    for stem, (cn, orgs) in CLIENTS.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(_name(cn, orgs), ca_name, key.public_key(), ca_key, client=True)
        _write_key(pki / f"{stem}.key", key)
        (pki / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa.key", sa)
    (pki / "sa.pub").write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def issue_client(pki: Path, stem: str, user: str, groups: list[str]) -> None:
    """A client certificate for ``user`` in ``groups`` signed by the local CA (for tests and demos)."""
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(_name(user, groups), ca.subject, key.public_key(), ca_key, client=True)
    _write_key(pki / f"{stem}.key", key)
    (pki / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def issue_server(pki: Path, stem: str, hosts: list[str]) -> None:
    """A serving certificate for ``hosts`` (IPs or names) signed by the local CA, once."""
    if (pki / f"{stem}.crt").exists():
        return
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(_name(stem), ca.subject, key.public_key(), ca_key, server_sans=sans)
    _write_key(pki / f"{stem}.key", key)
    (pki / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
