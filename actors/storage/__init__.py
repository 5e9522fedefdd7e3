"""All DuckDB: plain ``(conn, …)`` functions over one connection, split by concept. The Store actor
(``actors.store``) owns the connection and offers them as domain operations (writes inside its group
commit); no other process opens the database file, and no SQL leaves this package.

- ``database``: opening the file (encrypted under ENCRYPTION_KEY, re-keyed), ``migrations``
- ``commit``: the group commit; ``events``: the run event log behind the SSE stream
- ``queue``, ``queue_recovery``, ``tasks``: the task queue's transitions and reads
- ``runs``, ``conversations``: requests, their plans and ends, messages, what a run cost
- ``memory_entries``, ``documents``: what memory is rebuilt from, uploads, learnings
- ``actions``, ``credentials``: gated actions, policies, audit; sealed OAuth credentials and states
- ``leads``, ``drafts``, ``tool_effects``, ``tool_ops``: what sub-agents' tools read and write, always
  for one user (``tool_ops`` runs a ``core.storage_schemas.ToolOp``)
- ``settings``: the settings saved from the UI
"""
