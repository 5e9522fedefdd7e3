"""Ordered DuckDB migrations, recorded in ``schema_migrations``. Append only: never edit one that shipped."""

from __future__ import annotations

import time

import duckdb

from actors.storage import migration_approvers

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "product schema",
        """
        CREATE TABLE users (
            id TEXT PRIMARY KEY, name TEXT, email TEXT, created_at DOUBLE NOT NULL
        );
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, token_hash TEXT NOT NULL,
            created_at DOUBLE NOT NULL, expires_at DOUBLE NOT NULL
        );
        CREATE TABLE oauth_credentials (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, provider TEXT NOT NULL, scopes TEXT,
            ciphertext BLOB, nonce BLOB, key_id TEXT, created_at DOUBLE NOT NULL, updated_at DOUBLE NOT NULL
        );
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT,
            created_at DOUBLE NOT NULL, updated_at DOUBLE NOT NULL
        );
        CREATE TABLE messages (
            id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL,
            run_id TEXT, created_at DOUBLE NOT NULL
        );
        CREATE TABLE runs (
            id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, message TEXT NOT NULL,
            status TEXT NOT NULL, plan TEXT, summary TEXT, error TEXT,
            created_at DOUBLE NOT NULL, updated_at DOUBLE NOT NULL, finished_at DOUBLE
        );
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY, run_id TEXT NOT NULL, step_id TEXT NOT NULL, seq INTEGER NOT NULL,
            agent TEXT NOT NULL, instruction TEXT NOT NULL, depends_on TEXT NOT NULL,
            status TEXT NOT NULL, attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
            lease_owner TEXT, lease_expires_at DOUBLE, next_attempt_at DOUBLE,
            idempotency_key TEXT NOT NULL, result TEXT, error TEXT,
            created_at DOUBLE NOT NULL, updated_at DOUBLE NOT NULL, ready_at DOUBLE,
            started_at DOUBLE, finished_at DOUBLE
        );
        CREATE TABLE agent_runs (
            id TEXT PRIMARY KEY, run_id TEXT, task_id TEXT, agent TEXT, attempt INTEGER,
            kind TEXT NOT NULL, model TEXT, tokens_in INTEGER, tokens_out INTEGER,
            latency_ms DOUBLE, queued_ms DOUBLE, ok BOOLEAN NOT NULL, error TEXT, created_at DOUBLE NOT NULL
        );
        CREATE TABLE memory_entries (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, collection TEXT NOT NULL, source TEXT,
            source_id TEXT, content_hash TEXT NOT NULL, embedding_id TEXT, metadata TEXT,
            created_at DOUBLE NOT NULL
        );
        CREATE TABLE audit_log (
            id TEXT PRIMARY KEY, occurred_at DOUBLE NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
            run_id TEXT, task_id TEXT, detail TEXT
        );
        """,
    ),
    (
        2,
        "sub-agent tool data: leads, documents, drafts",
        """
        CREATE TABLE leads (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, email TEXT, company TEXT,
            phone TEXT, tags TEXT NOT NULL DEFAULT '[]', status TEXT NOT NULL DEFAULT 'new',
            score INTEGER, notes TEXT, next_follow_up DOUBLE, source TEXT,
            created_at DOUBLE NOT NULL, updated_at DOUBLE NOT NULL
        );
        CREATE TABLE documents (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
            content TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]', task_id TEXT,
            idempotency_key TEXT UNIQUE, created_at DOUBLE NOT NULL
        );
        CREATE TABLE drafts (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, task_id TEXT, channel TEXT NOT NULL,
            target TEXT NOT NULL, subject TEXT, body TEXT, status TEXT NOT NULL,
            idempotency_key TEXT UNIQUE, created_at DOUBLE NOT NULL
        );
        """,
    ),
    (
        3,
        "run event log (SSE) and settings saved from the UI",
        """
        CREATE TABLE run_events (
            run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, occurred_at DOUBLE NOT NULL,
            body TEXT NOT NULL, PRIMARY KEY (run_id, seq)
        );
        CREATE TABLE settings_overrides (
            name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at DOUBLE NOT NULL
        );
        """,
    ),
    (
        4,
        "long-term memory: document status, memory entry text, learnings, sources a run was given",
        """
        ALTER TABLE documents ADD COLUMN filename TEXT;
        ALTER TABLE documents ADD COLUMN content_hash TEXT;
        ALTER TABLE documents ADD COLUMN status TEXT DEFAULT 'ready';
        ALTER TABLE documents ADD COLUMN chunks INTEGER DEFAULT 0;
        ALTER TABLE documents ADD COLUMN chunks_done INTEGER DEFAULT 0;
        ALTER TABLE documents ADD COLUMN bytes INTEGER DEFAULT 0;
        ALTER TABLE documents ADD COLUMN error TEXT;
        ALTER TABLE memory_entries ADD COLUMN content TEXT;
        ALTER TABLE memory_entries ADD COLUMN chunk_index INTEGER;
        ALTER TABLE memory_entries ADD COLUMN embedding_model TEXT;
        CREATE TABLE learnings (
            run_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, request TEXT NOT NULL, plan TEXT,
            outcome TEXT NOT NULL, errors TEXT NOT NULL DEFAULT '[]', rating TEXT, correction TEXT,
            comment TEXT, created_at DOUBLE NOT NULL, updated_at DOUBLE NOT NULL
        );
        CREATE TABLE run_sources (
            run_id TEXT NOT NULL, task_id TEXT, collection TEXT NOT NULL, source_id TEXT NOT NULL,
            title TEXT NOT NULL, heading TEXT, snippet TEXT NOT NULL, score DOUBLE NOT NULL, link TEXT NOT NULL,
            created_at DOUBLE NOT NULL
        );
        """,
    ),
    (
        5,
        "Google Workspace: credential state, OAuth states, gated actions, approval policies, waiting tasks, audit",
        """
        ALTER TABLE oauth_credentials ADD COLUMN status TEXT DEFAULT 'connected';
        ALTER TABLE oauth_credentials ADD COLUMN reason TEXT;
        CREATE TABLE oauth_states (
            state TEXT PRIMARY KEY, user_id TEXT NOT NULL, provider TEXT NOT NULL, features TEXT NOT NULL,
            redirect_uri TEXT NOT NULL, ciphertext BLOB NOT NULL, nonce BLOB NOT NULL, key_id TEXT NOT NULL,
            created_at DOUBLE NOT NULL, expires_at DOUBLE NOT NULL, used_at DOUBLE
        );
        CREATE TABLE actions (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, run_id TEXT, task_id TEXT, action TEXT NOT NULL,
            status TEXT NOT NULL, args_hash TEXT NOT NULL, ciphertext BLOB NOT NULL, nonce BLOB NOT NULL,
            key_id TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, grp TEXT NOT NULL, replaces TEXT,
            created_at DOUBLE NOT NULL, expires_at DOUBLE NOT NULL, decided_by TEXT, decided_at DOUBLE,
            attempts INTEGER NOT NULL DEFAULT 0, started_at DOUBLE, finished_at DOUBLE, result TEXT, error TEXT,
            updated_at DOUBLE NOT NULL
        );
        CREATE INDEX actions_status ON actions (status);
        CREATE TABLE approval_policies (
            user_id TEXT NOT NULL, action TEXT NOT NULL, policy TEXT NOT NULL, updated_at DOUBLE NOT NULL,
            PRIMARY KEY (user_id, action)
        );
        ALTER TABLE tasks ADD COLUMN waiting_on TEXT;
        ALTER TABLE audit_log ADD COLUMN user_id TEXT;
        ALTER TABLE audit_log ADD COLUMN subject_id TEXT;
        ALTER TABLE audit_log ADD COLUMN approved_by TEXT;
        """,
    ),
    (
        6,
        "actions: what was staged before an action ran (a mail's own draft); tool effects made once per step",
        """
        ALTER TABLE actions ADD COLUMN staged TEXT;
        CREATE TABLE tool_effects (
            idempotency_key TEXT PRIMARY KEY, user_id TEXT NOT NULL, task_id TEXT, tool TEXT NOT NULL,
            result TEXT NOT NULL, created_at DOUBLE NOT NULL
        );
        """,
    ),
    (
        7,
        "agent_runs: the form an LLM call's tool calls came in (native, or text: hermes, llama, mistral, json, fenced)",
        "ALTER TABLE agent_runs ADD COLUMN tool_call_format TEXT;",
    ),
    (
        8,
        "runs: the budget a run was given (tokens, wall-clock seconds; JSON of core.budget.Budget)",
        "ALTER TABLE runs ADD COLUMN budget TEXT;",
    ),
    (
        9,
        "accounts: users' role, disabled flag and Argon2id password hash; sessions' last use; API tokens and "
        "one-time setup/invite links (secrets kept as SHA-256 hashes)",
        """
        -- users rebuilt, not altered thrice: a second ALTER of one table in a transaction fails on a
        -- connection whose configuration is locked (DuckDB 1.5: current_transaction_invalidation_policy)
        CREATE TABLE users_v9 (
            id TEXT PRIMARY KEY, name TEXT, email TEXT, role TEXT NOT NULL DEFAULT 'member',
            disabled BOOLEAN NOT NULL DEFAULT false, password_hash TEXT, created_at DOUBLE NOT NULL
        );
        INSERT INTO users_v9 (id, name, email, created_at) SELECT id, name, email, created_at FROM users;
        DROP TABLE users;
        ALTER TABLE users_v9 RENAME TO users;
        ALTER TABLE sessions ADD COLUMN last_seen_at DOUBLE;
        CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, token_hash TEXT NOT NULL,
            created_at DOUBLE NOT NULL, last_used_at DOUBLE, revoked_at DOUBLE
        );
        CREATE TABLE invites (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, token_hash TEXT NOT NULL, kind TEXT NOT NULL,
            created_at DOUBLE NOT NULL, expires_at DOUBLE NOT NULL, used_at DOUBLE
        );
        """,
    ),
    migration_approvers.MIGRATION,  # 10: the install's approval policies, approval delegates
    (
        11,
        "tasks: the Ray node a step's last attempt ran on (its pool's; the first 8 hex digits of the node id)",
        "ALTER TABLE tasks ADD COLUMN node TEXT;",
    ),
]


def migrate(conn: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration not yet recorded, in order, each in its own transaction."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at DOUBLE)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    applied: list[int] = []
    for version, name, sql in sorted(MIGRATIONS):
        if version in done:
            continue
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, time.time()])
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied
