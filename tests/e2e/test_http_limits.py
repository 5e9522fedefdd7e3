"""Limits of the served app, as a client meets them: an upload bomb (chunked, no length) is refused
while it is still being sent; a declared length over the limit is refused before the body; and
test-connection will not reach a host the settings do not name."""

from __future__ import annotations

import select
import socket
import time
from urllib.parse import urlsplit

from tests.e2e.conftest import LOGIN, Served

MB = 1024 * 1024
BOUNDARY = "maos-e2e-boundary"


def _connect(served: Served) -> socket.socket:
    parts = urlsplit(served.base_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=60)


def _head(served: Served, extra: str) -> bytes:
    host = urlsplit(served.base_url).netloc
    auth = "".join(f"{k}: {v}\r\n" for k, v in LOGIN.items())
    return (f"POST /api/documents HTTP/1.1\r\nHost: {host}\r\n{auth}"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{extra}\r\n").encode()


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status and the whole answer (read until its Content-Length is in, or the server closes)."""
    data = b""
    deadline = time.monotonic() + 30
    sock.settimeout(5)
    while time.monotonic() < deadline:
        head, sep, body = data.partition(b"\r\n\r\n")
        lengths = [int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")]
        if sep and lengths and len(body) >= lengths[0]:
            break
        try:
            piece = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not piece:
            break
        data += piece
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1]), data


def test_an_upload_bomb_without_a_length_is_refused_as_it_streams(served: Served) -> None:
    """Chunked, so nothing tells its size up front: the app counts it as it arrives and answers 413
    at the limit. (Ray Serve's proxy queues what the client sends until the replica asks for it, so
    on loopback the client may finish sending before that answer: how much the app itself takes in
    is measured on the route, in tests/unit/test_http_limits.py.)"""
    limit = 50 * MB  # the served app's max_upload_mb (the default)
    chunk = b"a" * (256 * 1024)
    with _connect(served) as sock:
        sock.sendall(_head(served, "Transfer-Encoding: chunked\r\n"))
        part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bomb.txt\"\r\n"
                "Content-Type: text/plain\r\n\r\n").encode()
        sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        sent = 0
        try:
            while sent < limit + 30 * MB and not select.select([sock], [], [], 0)[0]:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # it answered and closed while we sent
            pass
        status, data = _answer(sock)
    assert status == 413, data[:500]  # before: read whole, then refused by the memory actor (422)
    assert b"MAOS_MAX_UPLOAD_MB" in data


def test_a_declared_length_over_the_limit_is_refused_before_the_body(served: Served) -> None:
    with _connect(served) as sock:
        sock.sendall(_head(served, f"Content-Length: {400 * MB}\r\n"))  # and no body at all
        status, data = _answer(sock)
    assert status == 413 and b"MAOS_MAX_UPLOAD_MB" in data, data[:500]


def test_test_connection_refuses_a_host_the_settings_do_not_name(served: Served) -> None:
    with served.client() as api:
        for url in ("http://evil.example:11434", "http://169.254.169.254", "http://127.0.0.1@evil.example"):
            started = time.monotonic()
            refused = api.post("/api/settings/test-connection", json={"provider": "ollama", "base_url": url})
            assert refused.status_code == 422, refused.text
            assert "reaches only this machine" in refused.json()["detail"]
            assert time.monotonic() - started < 3  # no 3 s probe timeout: nothing was tried
        status = api.get("/api/status").json()
        assert "@" not in status["llm_base_url"] and "?" not in status["llm_base_url"]
