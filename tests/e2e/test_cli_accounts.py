"""`maos users …` on a data directory (no app running), and `maos login` / `whoami` / `logout`
against the served app: subprocesses, as a person runs them."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import httpx

from tests.e2e.conftest import Served
from tests.e2e.test_cli import maos


def test_maos_users_add_invite_list_disable_on_the_database_file(tmp_path: Path) -> None:
    env = {**os.environ, "MAOS_DATA_DIR": str(tmp_path / "data")}
    env.pop("RAY_ADDRESS", None)
    added = maos(["users", "add", "ada", "--admin", "--password-stdin"], env, stdin="ada's password\n")
    assert added.returncode == 0 and "ada (admin) can log in" in added.stdout, added.stderr[-2000:]
    assert maos(["users", "add", "ada"], env).returncode == 2  # taken
    invited = maos(["users", "invite", "bob"], env)
    assert invited.returncode == 0 and "/setup#" in invited.stdout and "72 h" in invited.stdout
    # ada names bob her approval delegate; a name that is no one changes nothing; then nobody again
    named = maos(["approvals", "delegates", "--set", "bob"], env)
    assert named.returncode == 0 and "your approval delegates: bob" in named.stdout, named.stderr[-2000:]
    unknown = maos(["approvals", "delegates", "--set", "bob,nobody-such"], env)
    assert unknown.returncode == 1 and "nobody-such" in unknown.stdout
    assert "your approval delegates: bob\n" in maos(["approvals", "delegates"], env).stdout
    cleared = maos(["approvals", "delegates", "--none"], env)
    assert cleared.returncode == 0 and "your approval delegates: nobody" in cleared.stdout
    disabled = maos(["users", "disable", "bob"], env)
    assert disabled.returncode == 0 and "disabled" in disabled.stdout
    listed = {u["name"]: u for u in json.loads(maos(["users", "list", "--json"], env).stdout)}
    assert listed["ada"]["role"] == "admin" and listed["ada"]["has_password"] and listed["ada"]["id"] == "local"
    assert listed["bob"]["role"] == "member" and not listed["bob"]["has_password"] and listed["bob"]["disabled"]
    assert "ada's password" not in (tmp_path / "data" / "maos.duckdb").read_bytes().decode("latin-1")


def test_maos_login_keeps_a_token_for_the_cli_and_logout_revokes_it(served: Served, tmp_path: Path) -> None:
    base = served.base_url
    name = f"cli-{uuid.uuid4().hex[:6]}"
    with served.client() as root:
        link = root.post("/api/users", json={"name": name}).json()["link"]
    assert httpx.post(f"{base}/api/auth/accept", json={"token": link.split("#")[1], "password": "cli password"},
                      timeout=30).status_code == 200
    env = {**os.environ, "MAOS_DATA_DIR": str(tmp_path / "cli")}
    env.pop("RAY_ADDRESS", None)
    wrong = maos(["login", "--url", base, "--name", name, "--password-stdin"], env, stdin="nope\n")
    assert wrong.returncode == 2 and "wrong name or password" in wrong.stderr
    logged = maos(["login", "--url", base, "--name", name, "--password-stdin"], env, stdin="cli password\n")
    assert logged.returncode == 0, logged.stderr[-2000:]
    saved = tmp_path / "cli" / "cli_token.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    token = json.loads(saved.read_text())["token"]
    assert token.startswith("maos_") and token not in logged.stdout
    who = maos(["whoami"], env)
    assert who.returncode == 0 and who.stdout.strip() == f"{name} (member)"
    assert maos(["logout"], env).returncode == 0 and not saved.exists()
    assert httpx.get(f"{base}/api/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 401
