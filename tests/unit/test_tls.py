"""HTTPS without a proxy: ``maos tls self-signed``'s certificate, the TLS settings, the pinned trust
the app's own clients use, and the warning at start when a LAN gets plain HTTP."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import ValidationError
from structlog.testing import capture_logs

from core.errors import ConfigError
from core.settings import Settings
from core.tls import client_verify, pinned_context
from serve_app import cli
from serve_app.cli_tls import self_signed, subject_names
from serve_app.server import clear_text_warning, tls_options, warn_if_clear_text


@contextmanager
def tls_server(cert: Path, key: Path) -> Iterator[int]:
    """A TLS server on 127.0.0.1 presenting ``cert`` (handshakes only); yields its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"x")
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the thread (close() does not)
        listener.close()
        thread.join(timeout=10)


def handshake(port: int, context: ssl.SSLContext, name: str) -> bool:
    """Does a client with ``context``, asking for ``name``, accept the server on ``port``?"""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                return tls.recv(1) == b"x"
        except ssl.SSLCertVerificationError:
            return False


def test_self_signed_names_loopback_this_machine_and_each_host(tmp_path: Path) -> None:
    made = self_signed(tmp_path / "tls", ["192.168.1.20", "maos.lan.test", "127.0.0.1"], hostname="Ops-Box")
    assert made.names == ["localhost", "127.0.0.1", "::1", "ops-box", "192.168.1.20", "maos.lan.test"]
    cert = x509.load_pem_x509_certificate(made.cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "ops-box", "maos.lan.test"}
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1", "192.168.1.20"}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert stat.S_IMODE(made.key.stat().st_mode) == 0o600
    assert made.key.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # not encrypted: the server reads it
    assert not list((tmp_path / "tls").glob("*.new"))

    as_ca = ssl.create_default_context(cafile=str(made.cert))  # what a browser does once the cert is trusted
    with tls_server(made.cert, made.key) as port:
        for name in ("127.0.0.1", "localhost", "ops-box", "192.168.1.20", "maos.lan.test"):
            assert handshake(port, as_ca, name), name
        assert not handshake(port, as_ca, "elsewhere.test")
        assert not handshake(port, ssl.create_default_context(), "localhost")  # self-signed: no public CA


def test_self_signed_keeps_existing_files_and_refuses_a_bad_host(tmp_path: Path) -> None:
    first = self_signed(tmp_path, hostname="box")
    kept = first.cert.read_bytes()
    with pytest.raises(FileExistsError, match="--force"):
        self_signed(tmp_path, hostname="box")
    assert first.cert.read_bytes() == kept
    with pytest.raises(ValueError, match="neither an IP address nor a host name"):
        self_signed(tmp_path / "other", ["http://maos.lan"], hostname="box")
    assert not (tmp_path / "other").exists()
    again = self_signed(tmp_path, hostname="box", force=True)
    assert again.cert.read_bytes() != kept and again.sha256 != first.sha256
    assert subject_names([" [::1] ", "Box", ""], hostname="box") == ["localhost", "127.0.0.1", "::1", "box"]


def test_maos_tls_self_signed_prints_the_two_settings_and_defaults_to_the_data_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MAOS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli, "configure", lambda *_: None)  # logs to this test's captured stderr, closed after it
    with pytest.raises(SystemExit) as done:
        cli.main(["tls", "self-signed", "--host", "10.0.0.7"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    tls_dir = (tmp_path / "data" / "tls").resolve()
    assert f"MAOS_TLS_CERT={tls_dir / 'cert.pem'}\n" in out and f"MAOS_TLS_KEY={tls_dir / 'key.pem'}\n" in out
    assert "10.0.0.7" in out and "fingerprint" in out
    with pytest.raises(SystemExit) as again:
        cli.main(["tls", "self-signed"])
    assert again.value.code == 2 and "--force" in capsys.readouterr().err


def test_tls_settings_both_or_neither_readable_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = self_signed(tmp_path / "tls", hostname="box")
    with pytest.raises(ValidationError, match="MAOS_TLS_CERT is set but MAOS_TLS_KEY is not"):
        Settings(tls_cert=made.cert)
    with pytest.raises(ValidationError, match="MAOS_TLS_KEY is set but MAOS_TLS_CERT is not"):
        Settings(tls_key=made.key)
    with pytest.raises(ValidationError, match="missing.pem is not a readable file"):
        Settings(tls_cert=tmp_path / "missing.pem", tls_key=made.key)
    plain = Settings(port=8443)
    assert plain.url_scheme == "http" and plain.base_url == "http://127.0.0.1:8443" and tls_options(plain) == {}
    monkeypatch.chdir(tmp_path)
    served = Settings(tls_cert=Path("tls/cert.pem"), tls_key=Path("tls/key.pem"), port=8443, host="0.0.0.0")
    assert served.tls_cert == made.cert and served.tls_key == made.key  # Serve's proxy runs elsewhere
    assert served.url_scheme == "https" and served.base_url == "https://127.0.0.1:8443"
    assert tls_options(served) == {"ssl_certfile": str(made.cert), "ssl_keyfile": str(made.key)}
    assert served.without_secrets().tls_cert == made.cert  # a path, not a secret: the replica gets it


def test_the_apps_own_clients_trust_exactly_its_certificate(tmp_path: Path) -> None:
    ours = self_signed(tmp_path / "ours", hostname="box")
    other = self_signed(tmp_path / "other", hostname="box")  # the same names, another key
    pinned = client_verify(ours.cert)
    assert isinstance(pinned, ssl.SSLContext) and pinned.verify_mode == ssl.CERT_REQUIRED
    assert client_verify(None) is True  # no certificate of ours: the system's CAs
    chain = tmp_path / "chain.pem"  # a chain after the server's certificate is not trusted with it
    chain.write_text(ours.cert.read_text() + other.cert.read_text())
    with tls_server(ours.cert, ours.key) as port:
        assert handshake(port, pinned, "127.0.0.1")
        assert handshake(port, pinned, "maos.lan.test")  # the UI dials 127.0.0.1, whatever the cert names
    with tls_server(other.cert, other.key) as port:
        assert not handshake(port, pinned, "127.0.0.1")
        assert not handshake(port, pinned_context(chain), "127.0.0.1")
    (tmp_path / "empty.pem").write_text("no certificate here")
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        pinned_context(tmp_path / "empty.pem")


def test_a_lan_bind_without_tls_is_announced_not_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = Settings()
    for host in ("0.0.0.0", "192.168.1.20", "::", "maos.lan.test"):
        warning = clear_text_warning(plain, host)
        assert warning is not None, host
        for words in ("clear text", "not marked Secure", "maos tls self-signed", "MAOS_TLS_CERT", "MAOS_TLS_KEY"):
            assert words in warning, (host, words)
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert clear_text_warning(plain, host) is None, host
    made = self_signed(tmp_path, hostname="box")
    assert clear_text_warning(Settings(tls_cert=made.cert, tls_key=made.key), "0.0.0.0") is None

    with capture_logs() as logs:
        warn_if_clear_text(plain, "0.0.0.0")
        warn_if_clear_text(plain, "127.0.0.1")
    assert [(e["event"], e["bind_host"], e["secure_cookies"]) for e in logs] == [("tls.off", "0.0.0.0", False)]
    printed = capsys.readouterr().out
    assert printed.count("WARNING: serving plain HTTP") == 1 and "maos tls self-signed" in printed


def test_the_cli_names_a_bad_tls_setting_instead_of_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MAOS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MAOS_TLS_CERT", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("MAOS_TLS_KEY", str(tmp_path / "missing.key"))
    with pytest.raises(SystemExit) as ended:
        cli.main(["tls", "self-signed"])
    assert ended.value.code == 2
    said = capsys.readouterr().err
    assert said.startswith("maos: the settings are not valid:") and "missing.pem is not a readable file" in said
    assert "Traceback" not in said
