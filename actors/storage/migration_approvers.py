"""Migration 10: approval policies become the install's, and each person may name approval delegates.

Until now ``approval_policies`` held a row per (user, action type); only an admin could write them,
under the admin's own id, and an action was checked against its run owner's rows — so an admin's
change never reached a member's agents. Now one policy per action type applies to everyone.

What the per-user rows become (the most cautious reading, so that the migration never lets anyone's
agents do more without a person than before):

- a type some row says ``deny`` is ``deny``;
- every other type with a saved row is ``ask``: an ``allow`` saved for one person is *not* carried
  over, since it would now let every member's agents act unapproved and nobody re-authenticated
  for that. An admin widens it again (with the re-authentication that widening asks for). Each such
  type leaves an audit row ``policy.migrated`` (actor ``system``) saying so;
- a type with no row stays unsaved, which reads as ``ask``.

``approval_delegates``: (owner, delegate) pairs — the delegate may see and decide the owner's
pending actions (``actors.storage.delegates``).
"""

from __future__ import annotations

MIGRATION: tuple[int, str, str] = (
    10,
    "approval policies are the install's (per-user rows folded: deny if any said deny, else ask; an allow is "
    "not carried over, audited as policy.migrated); approval_delegates (owner, delegate)",
    """
    CREATE TABLE approval_policies_v10 (
        action TEXT PRIMARY KEY, policy TEXT NOT NULL, updated_at DOUBLE NOT NULL, updated_by TEXT
    );
    INSERT INTO approval_policies_v10 (action, policy, updated_at, updated_by)
        SELECT action, CASE WHEN bool_or(policy = 'deny') THEN 'deny' ELSE 'ask' END, max(updated_at), 'migration'
        FROM approval_policies GROUP BY action;
    INSERT INTO audit_log (id, occurred_at, actor, action, detail, subject_id)
        SELECT 'migration10-' || action, epoch(current_timestamp), 'system', 'policy.migrated',
               '{"from": "allow", "to": "ask", "why": "policies are the install''s now: an admin widens it again"}',
               action
        FROM approval_policies GROUP BY action HAVING bool_or(policy = 'allow') AND NOT bool_or(policy = 'deny');
    DROP TABLE approval_policies;
    ALTER TABLE approval_policies_v10 RENAME TO approval_policies;
    CREATE TABLE approval_delegates (
        owner_id TEXT NOT NULL, delegate_id TEXT NOT NULL, created_at DOUBLE NOT NULL,
        PRIMARY KEY (owner_id, delegate_id)
    );
    """,
)
