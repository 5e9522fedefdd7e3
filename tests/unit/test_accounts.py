"""Accounts in storage (on :memory:), password hashing, CSRF tokens and the login lockout: no Ray."""

from __future__ import annotations

import duckdb
import pytest

from actors.storage import accounts
from actors.storage.migrations import migrate
from core.errors import Conflict, NotFound
from serve_app.lockout import Lockout
from serve_app.passwords import (
    csrf_matches,
    csrf_of,
    hash_password,
    new_api_token,
    new_secret,
    secret_hash,
    verify_password,
)

HOUR = 3600.0


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect(":memory:")
    migrate(c)
    return c


def test_users_are_made_once_per_name_listed_changed_and_looked_up_by_name(conn: duckdb.DuckDBPyConnection) -> None:
    admin = accounts.create_user(conn, "local", "Admin", "admin", None, 1.0)
    assert admin.role == "admin" and not admin.has_password and not admin.disabled
    with pytest.raises(Conflict, match="already exists"):
        accounts.create_user(conn, "u2", "admin", "member", None, 2.0)  # any case
    accounts.create_user(conn, "u2", "bea", "member", "argon-hash", 2.0)
    assert [u.name for u in accounts.list_users(conn)] == ["Admin", "bea"]
    record = accounts.login_record(conn, "BEA")
    assert record is not None and record.password_hash == "argon-hash" and record.user.id == "u2"
    assert accounts.login_record(conn, "nobody") is None
    changed = accounts.change_user(conn, "u2", "admin", None, None, 3.0)
    assert changed.role == "admin" and changed.has_password
    with pytest.raises(NotFound):
        accounts.change_user(conn, "ghost", None, True, None, 3.0)


def test_a_session_ends_at_expiry_when_idle_at_log_out_and_when_its_user_is_disabled(
        conn: duckdb.DuckDBPyConnection) -> None:
    accounts.create_user(conn, "u1", "ann", "member", "h", 0.0)
    accounts.add_credential(conn, "session", "u1", "s1", "", 100 * HOUR, 0.0)
    found = accounts.session_user(conn, "s1", idle_s=HOUR, now=0.5 * HOUR)
    assert found is not None and found[0].id == "u1"
    assert accounts.session_user(conn, "s1", idle_s=HOUR, now=1.5 * HOUR) is None  # idle past an hour
    accounts.touch_session(conn, "s1", 0.9 * HOUR)
    assert accounts.session_user(conn, "s1", idle_s=HOUR, now=1.5 * HOUR) is not None  # it was used since
    assert accounts.session_user(conn, "s1", idle_s=1000 * HOUR, now=100 * HOUR) is None  # expired
    assert accounts.session_user(conn, "other", idle_s=HOUR, now=0.5 * HOUR) is None
    # log out one, then everywhere
    accounts.add_credential(conn, "session", "u1", "s2", "", 100 * HOUR, 0.0)
    accounts.add_credential(conn, "session", "u1", "s3", "", 100 * HOUR, 0.0)
    assert accounts.end_credentials(conn, "session", "u1", "s2", None, 1.0) == 1
    assert accounts.session_user(conn, "s2", idle_s=HOUR, now=1.0) is None
    assert accounts.session_user(conn, "s3", idle_s=HOUR, now=1.0) is not None
    assert accounts.end_credentials(conn, "session", "u2", None, None, 1.0) == 0  # another user's: none
    assert accounts.end_credentials(conn, "session", "u1", None, None, 1.0) == 2
    assert accounts.session_user(conn, "s3", idle_s=HOUR, now=1.0) is None
    # disabling ends the sessions
    accounts.add_credential(conn, "session", "u1", "s4", "", 100 * HOUR, 0.0)
    accounts.change_user(conn, "u1", None, True, None, 2.0)
    assert accounts.session_user(conn, "s4", idle_s=HOUR, now=2.0) is None


def test_api_tokens_are_listed_without_the_secret_and_stop_when_revoked_or_the_user_is_disabled(
        conn: duckdb.DuckDBPyConnection) -> None:
    accounts.create_user(conn, "u1", "ann", "member", "h", 0.0)
    t1 = accounts.add_credential(conn, "api_token", "u1", "hash1", "laptop", None, 1.0)
    accounts.add_credential(conn, "api_token", "u1", "hash2", "script", None, 2.0)
    listed = accounts.api_tokens(conn, "u1")
    assert [t.name for t in listed] == ["script", "laptop"] and "hash" not in str(listed)
    user = accounts.token_user(conn, "hash1", 10.0)
    assert user is not None and user.id == "u1"
    assert accounts.api_tokens(conn, "u1")[1].last_used_at == 10.0
    assert accounts.end_credentials(conn, "api_token", "u2", None, t1, 11.0) == 0  # not another user's
    assert accounts.end_credentials(conn, "api_token", "u1", None, t1, 11.0) == 1
    assert accounts.end_credentials(conn, "api_token", "u1", None, t1, 12.0) == 0  # once
    assert accounts.token_user(conn, "hash1", 13.0) is None
    assert [t.name for t in accounts.api_tokens(conn, "u1")] == ["script"]
    accounts.change_user(conn, "u1", None, True, None, 14.0)
    assert accounts.token_user(conn, "hash2", 15.0) is None and accounts.api_tokens(conn, "u1") == []


def test_an_invite_sets_the_password_once_before_it_expires_and_a_newer_one_replaces_it(
        conn: duckdb.DuckDBPyConnection) -> None:
    accounts.create_user(conn, "u1", "ann", "member", None, 0.0)
    accounts.add_credential(conn, "invite", "u1", "old", "invite", 72 * HOUR, 0.0)
    accounts.add_credential(conn, "invite", "u1", "new", "invite", 72 * HOUR, 1.0)
    with pytest.raises(NotFound, match="not valid"):
        accounts.redeem_invite(conn, "old", "pw-hash", 2.0)  # replaced
    with pytest.raises(NotFound):
        accounts.redeem_invite(conn, "new", "pw-hash", 73 * HOUR)  # expired
    user = accounts.redeem_invite(conn, "new", "pw-hash", 2.0)
    assert user.has_password
    login = accounts.login_record(conn, "ann")
    assert login is not None and login.password_hash == "pw-hash"
    with pytest.raises(NotFound):
        accounts.redeem_invite(conn, "new", "other-hash", 3.0)  # used once


def test_passwords_are_argon2id_and_secrets_are_random_and_kept_as_hashes() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert verify_password(stored, "correct horse") and not verify_password(stored, "correct horsE")
    assert not verify_password(None, "anything") and not verify_password("garbage", "x")
    assert new_secret() != new_secret() and len(new_secret()) >= 40
    token = new_api_token()
    assert token.startswith("maos_") and secret_hash(token) != token and len(secret_hash(token)) == 64


def test_the_csrf_token_belongs_to_its_session() -> None:
    a, b = new_secret(), new_secret()
    assert csrf_matches(a, csrf_of(a)) and not csrf_matches(a, csrf_of(b))
    assert not csrf_matches(a, None) and not csrf_matches(a, "") and csrf_of(a) != a


def test_the_sixth_wrong_password_in_a_minute_is_refused_and_locks_back_off() -> None:
    lock = Lockout(per_account=5, per_address=10, window_s=60)
    for i in range(5):
        assert lock.wait("ann", "10.0.0.1", now=float(i)) == 0
        lock.failed("ann", "10.0.0.1", now=float(i))
    assert lock.wait("ann", "10.0.0.1", now=5.0) == pytest.approx(59.0)  # the 6th: refused, unchecked
    assert lock.wait("ANN", "10.0.0.2", now=5.0) > 0  # per account, from any address
    assert lock.wait("bob", "10.0.0.1", now=5.0) == 0  # the address is under its own limit
    assert lock.wait("ann", "10.0.0.1", now=64.0) == 0
    for i in range(5):
        lock.failed("ann", "10.0.0.1", now=70.0 + i)
    assert lock.wait("ann", "10.0.0.1", now=75.0) == pytest.approx(119.0)  # the second lock lasts twice as long
    lock.succeeded("ann")
    assert lock.wait("ann", "10.0.0.3", now=75.0) == 0
    # per address: many names from one address
    for i in range(10):
        lock.failed(f"user{i}", "10.9.9.9", now=100.0)
    assert lock.wait("someone-else", "10.9.9.9", now=101.0) > 0


def test_wrong_passwords_spread_over_more_than_a_minute_do_not_lock() -> None:
    lock = Lockout(per_account=5, window_s=60)
    for i in range(10):
        lock.failed("ann", "10.0.0.1", now=i * 20.0)
    assert lock.wait("ann", "10.0.0.1", now=200.0) == 0


def test_migration_9_runs_on_a_locked_connection_and_keeps_existing_users(monkeypatch: pytest.MonkeyPatch) -> None:
    from actors.storage import migrations
    from actors.storage.database import open_database

    c = open_database(":memory:")  # its configuration locked, as the Store's is
    everything = list(migrations.MIGRATIONS)
    monkeypatch.setattr(migrations, "MIGRATIONS", [m for m in everything if m[0] < 9])
    migrations.migrate(c)
    c.execute("INSERT INTO users (id, name, email, created_at) VALUES ('old', 'Old', NULL, 1.0)")
    monkeypatch.setattr(migrations, "MIGRATIONS", everything)
    assert 9 in migrations.migrate(c)
    assert [(u.id, u.role, u.disabled, u.has_password) for u in accounts.list_users(c)] == [("old", "member", False, False)]
