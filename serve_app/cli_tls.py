"""``maos tls self-signed``: a certificate and key for serving HTTPS on a LAN (``MAOS_TLS_CERT`` and
``MAOS_TLS_KEY``), named for loopback, this machine and each ``--host``."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import Settings

CERT_NAME, KEY_NAME = "cert.pem", "key.pem"
VALID_DAYS = 825  # the longest Apple's systems accept for a certificate a person trusts by hand


@dataclass(frozen=True)
class SelfSigned:
    cert: Path
    key: Path
    names: list[str]
    sha256: str  # the certificate's fingerprint, to compare when a browser shows it


def add_commands(sub: Any) -> dict[str, Callable[[Settings, argparse.Namespace], int]]:
    tls = sub.add_parser("tls", help="HTTPS: make a certificate for a LAN").add_subparsers(dest="tls_command",
                                                                                             required=True)
    signed = tls.add_parser("self-signed", help="write a self-signed certificate and key (0600) for this machine")
    signed.add_argument("--host", action="append", default=[], metavar="NAME",
                        help="another name or IP address people use to reach this machine (repeatable)")
    signed.add_argument("--out", type=Path, default=None, help="folder for cert.pem and key.pem (default: <data_dir>/tls)")
    signed.add_argument("--force", action="store_true", help="replace a certificate and key already there")
    return {"tls": _tls}


def subject_names(hosts: Sequence[str], hostname: str | None = None) -> list[str]:
    """The names the certificate carries: loopback, this machine's name, then ``hosts``; each once."""
    names = ["localhost", "127.0.0.1", "::1", hostname if hostname is not None else socket.gethostname(), *hosts]
    out: list[str] = []
    for name in (n.strip().strip("[]").lower() for n in names):
        if not name:
            continue
        if name not in out:
            out.append(name)
    return out


def _general_name(name: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        if any(c.isspace() or c in "/:@" for c in name):
            raise ValueError(f"'{name}' is neither an IP address nor a host name") from None
        return x509.DNSName(name)


def self_signed(out_dir: Path, hosts: Sequence[str] = (), hostname: str | None = None, force: bool = False,
                now: dt.datetime | None = None) -> SelfSigned:
    """Write ``cert.pem`` and ``key.pem`` (0600) into ``out_dir``: an ECDSA P-256 key and a certificate
    for :func:`subject_names`, valid :data:`VALID_DAYS` days. Existing files are kept unless ``force``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = subject_names(hosts, hostname)
    general = [_general_name(n) for n in names]  # a bad --host fails before anything is written
    cert_path, key_path = out_dir / CERT_NAME, out_dir / KEY_NAME
    if not force and (cert_path.exists() or key_path.exists()):
        raise FileExistsError(f"{cert_path} or {key_path} already exists (--force replaces them)")
    key = ec.generate_private_key(ec.SECP256R1())
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)  # a clock a little behind still accepts it
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[3] if len(names) > 3 else "localhost"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Master Agent OS (self-signed)")])
    public = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(public)
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(general), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return SelfSigned(cert_path.resolve(), key_path.resolve(), names, cert.fingerprint(hashes.SHA256()).hex(":"))


def _write(path: Path, data: bytes, mode: int) -> None:
    """Written whole under another name, then moved into place; the key is never readable by others."""
    partial = path.with_name(path.name + ".new")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(partial, mode)  # whatever the umask
    os.replace(partial, path)


def _tls(settings: Settings, args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else settings.data_dir / "tls"
    try:
        made = self_signed(out, args.host, force=args.force)
    except (FileExistsError, ValueError) as exc:
        print(f"maos tls self-signed: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {made.cert} (for {', '.join(made.names)}; valid {VALID_DAYS} days) and {made.key} (0600)")
    print(f"SHA-256 fingerprint: {made.sha256}")
    print("Serve HTTPS with these two (in .env or the environment), then restart the app:")
    print(f"MAOS_TLS_CERT={made.cert}")
    print(f"MAOS_TLS_KEY={made.key}")
    print("Browsers warn about a self-signed certificate: import cert.pem into each device's trust store, or "
          "accept it once after checking the fingerprint above. Another name or address: --host NAME, --force.")
    return 0
