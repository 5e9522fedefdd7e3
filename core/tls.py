"""A client's trust in this app's own certificate (``MAOS_TLS_CERT``), for the calls the app makes to
itself (the web UI to the API on 127.0.0.1) and the CLI's calls to it."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

from core.errors import ConfigError

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def pinned_context(cert_path: Path) -> ssl.SSLContext:
    """A client context that trusts exactly the server certificate in ``cert_path`` (its first one,
    the server's own; a chain after it is left out, so no other certificate its CA signed passes).

    The name is not checked: the UI dials 127.0.0.1, which a LAN certificate need not name, and the
    pin already admits only a server holding this certificate's key. Never ``verify=False``."""
    try:
        first = _PEM_CERT.search(cert_path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS certificate {cert_path}: {exc.strerror}") from exc
    if first is None:
        raise ConfigError(f"{cert_path} holds no PEM certificate")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=first.group(0))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the pinned certificate is the anchor, CA or not
    return context


def client_verify(cert_path: Path | None) -> ssl.SSLContext | bool:
    """httpx's ``verify=`` for this app: the pinned certificate when it serves one, else the system's CAs
    (a CLI on another machine, or an app behind a proxy with a public certificate)."""
    return pinned_context(cert_path) if cert_path is not None else True
