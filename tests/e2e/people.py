"""People signed in to the served app as a browser is: a session cookie, the CSRF token it pairs
with, and the page's own origin on every request (the admin, through the login token, or a new
person, invited and accepted)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import httpx

from serve_app.sessions import CSRF_COOKIE
from tests._cluster import LOGIN_TOKEN

PASSWORD = "correct horse battery"
BEARER = {"Authorization": f"Bearer {LOGIN_TOKEN}"}


@contextmanager
def signed_in(base_url: str, name: str, password: str) -> Iterator[httpx.Client]:
    """A client holding ``name``'s session, sending its CSRF token and the app's origin along."""
    with httpx.Client(base_url=base_url, timeout=60, headers={"Origin": base_url, "Sec-Fetch-Site": "same-origin"}) as client:
        answer = client.post("/api/auth/login", json={"name": name, "password": password})
        assert answer.status_code == 200, answer.text
        assert client.cookies.get(CSRF_COOKIE) == answer.json()["csrf_token"]
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        yield client


def admin_session(base_url: str) -> AbstractContextManager[httpx.Client]:
    """The install's admin in a browser: logged in at /login with the login token."""
    return signed_in(base_url, "admin", LOGIN_TOKEN)


def invited(base_url: str, name: str, role: str = "member", password: str = PASSWORD) -> str:
    """A person the admin invited (``role``) who set ``password`` through the link: their id."""
    with httpx.Client(base_url=base_url, timeout=60, headers=BEARER) as admin:
        made = admin.post("/api/users", json={"name": name, "role": role})
        assert made.status_code == 201, made.text
    link = made.json()["link"]
    accepted = httpx.post(f"{base_url}/api/auth/accept", json={"token": link.split("#", 1)[1], "password": password},
                          timeout=60)
    assert accepted.status_code == 200, accepted.text
    return str(made.json()["user"]["id"])
