"""``maos users …`` (accounts, on this machine: through the running app's Store, else the database
file), ``maos login`` / ``maos logout`` / ``maos whoami`` (an API token for the CLI's HTTP calls).

``maos login`` keeps its API token in ``<data_dir>/cli_token.json`` (mode 0600); :func:`api_client`
is the CLI's HTTP client, authenticated with it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.runtime.apis import StoreApi
from actors.runtime.typed import blocking
from core.account_schemas import ApiTokenCreated, UserView
from core.settings import Settings
from core.tls import client_verify


def add_commands(sub: Any) -> dict[str, Callable[[Settings, argparse.Namespace], int]]:
    users = sub.add_parser("users", help="accounts: list, add, invite, disable").add_subparsers(
        dest="users_command", required=True)
    listing = users.add_parser("list", help="every account")
    listing.add_argument("--json", action="store_true")
    add = users.add_parser("add", help="a new account: prints a one-time setup link, or reads a password from stdin")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="an admin (else a member)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin (no link)")
    invite = users.add_parser("invite", help="a new one-time link (valid 72 h) for an account, made if missing")
    invite.add_argument("name")
    invite.add_argument("--admin", action="store_true", help="a new account is an admin")
    disable = users.add_parser("disable", help="disable an account: its sessions and tokens stop at once")
    disable.add_argument("name")
    disable.add_argument("--enable", action="store_true", help="enable it again instead")
    login = sub.add_parser("login", help="log the CLI in: stores an API token (0600) for its HTTP calls")
    login.add_argument("--url", default=None, help="the app (default: MAOS_PUBLIC_URL or host:port)")
    login.add_argument("--name", default=None, help="your login name (asked when missing)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sub.add_parser("logout", help="revoke and forget the CLI's API token")
    sub.add_parser("whoami", help="who the CLI is logged in as")
    return {"users": _users, "login": _login, "logout": _logout, "whoami": _whoami}


# --- accounts, on this machine -----------------------------------------------------------------


def _store(settings: Settings) -> StoreApi:
    from serve_app.cli import _store as store_of

    return store_of(settings)


def _find(store: StoreApi, name: str) -> UserView | None:
    return next((u for u in blocking(store.users(), timeout=30) if u.name.lower() == name.lower()), None)


def _users(settings: Settings, args: argparse.Namespace) -> int:
    from serve_app.passwords import hash_password
    from serve_app.sessions import Accounts

    store = _store(settings)
    accounts = Accounts(store, settings.user_id)
    if args.users_command == "list":
        users = blocking(store.users(), timeout=30)
        if args.json:  # to the real stdout: cli.main sends the rest of a --json command's output to stderr
            print(json.dumps([u.model_dump() for u in users], indent=2), file=sys.__stdout__, flush=True)
        for u in users if not args.json else []:
            state = "disabled" if u.disabled else ("active" if u.has_password else "not set up")
            print(f"{u.id:<14} {u.name:<20} {u.role:<7} {state}")
        return 0
    found = _find(store, args.name)
    if args.users_command == "disable":
        if found is None:
            print(f"no user named '{args.name}'", file=sys.stderr)
            return 2
        blocking(store.change_user(user_id=found.id, role=None, disabled=not args.enable, password_hash=None), timeout=30)
        blocking(accounts.audit("user.enabled" if args.enable else "user.disabled", found.id, "cli", subject_id=found.id))
        print(f"{found.name} is {'enabled' if args.enable else 'disabled'}")
        return 0
    if args.users_command == "add" and found is not None:
        print(f"a user named '{found.name}' already exists (`maos users invite {found.name}` for a new link)",
              file=sys.stderr)
        return 2
    if found is None:
        # The first admin takes the install's own user id: what was made before accounts stays theirs.
        first_admin = args.admin and not any(u.id == settings.user_id for u in blocking(store.users(), timeout=30))
        password = sys.stdin.readline().rstrip("\n") if getattr(args, "password_stdin", False) else None
        if password is not None and len(password) < 8:
            print("the password needs 8 characters or more", file=sys.stderr)
            return 2
        found = blocking(store.create_user(user_id=settings.user_id if first_admin else uuid.uuid4().hex[:12],
                                           name=args.name, role="admin" if args.admin else "member",
                                           password_hash=hash_password(password) if password else None), timeout=30)
        blocking(accounts.audit("user.created", found.id, "cli", subject_id=found.id, role=found.role))
        if password is not None:
            print(f"{found.name} ({found.role}) can log in")
            return 0
    link, _ = blocking(accounts.invite(found.id, "invite"), timeout=30)
    blocking(accounts.audit("user.invited", found.id, "cli", subject_id=found.id))
    print(f"{found.name} ({found.role}): one-time link, valid 72 h: {settings.base_url}{link}")
    return 0


# --- the CLI's own login -----------------------------------------------------------------------


def token_path(settings: Settings) -> Path:
    return settings.data_dir / "cli_token.json"


def _saved(settings: Settings) -> dict[str, str] | None:
    path = token_path(settings)
    return json.loads(path.read_text()) if path.exists() else None


def api_client(settings: Settings, timeout: float = 60) -> Any:
    """An HTTP client for the app, with the token ``maos login`` stored (a ConfigError without one)."""
    import httpx

    from core.errors import ConfigError

    saved = _saved(settings)
    if saved is None:
        raise ConfigError("the CLI is not logged in: run `maos login`")
    return httpx.Client(base_url=saved["url"], timeout=timeout, headers={"Authorization": f"Bearer {saved['token']}"},
                        verify=client_verify(settings.tls_cert))


def _login(settings: Settings, args: argparse.Namespace) -> int:
    import httpx

    url = (args.url or settings.base_url).rstrip("/")
    name = args.name or input("name: ")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("password: ")
    answer = httpx.post(f"{url}/api/auth/token", timeout=60, verify=client_verify(settings.tls_cert),
                        json={"name": name, "password": password, "token_name": f"cli@{socket.gethostname()}"})
    if answer.status_code != 200:
        print(f"maos login: {answer.json().get('detail', answer.status_code)}", file=sys.stderr)
        return 2
    created = ApiTokenCreated.model_validate(answer.json())
    path = token_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": created.secret, "id": created.token.id}, f)
    os.replace(partial, path)
    print(f"logged in as {name}; the CLI's token is in {path}")
    return 0


def _logout(settings: Settings, args: argparse.Namespace) -> int:
    saved = _saved(settings)
    if saved is None:
        print("the CLI is not logged in")
        return 0
    with api_client(settings) as api:
        api.delete(f"/api/tokens/{saved['id']}")
    token_path(settings).unlink()
    print("logged out (the token is revoked)")
    return 0


def _whoami(settings: Settings, args: argparse.Namespace) -> int:
    with api_client(settings) as api:
        answer = api.get("/api/auth/me")
    if answer.status_code != 200:
        print(f"maos whoami: {answer.json().get('detail', answer.status_code)}", file=sys.stderr)
        return 2
    user = answer.json()["user"]
    print(f"{user['name']} ({user['role']})")
    return 0
