"""The operations tools send (:data:`core.storage_schemas.ToolOp`), each run for the user it names.

The Store runs the ones in ``WRITE_OPS`` in its group commit and the others on its reader; either
way through :func:`answer`, and every function reached from here keeps to ``op.user_id``'s rows.
"""

from __future__ import annotations

import duckdb

from actors.storage import documents, drafts, leads, tool_effects
from core.storage_schemas import (
    WRITE_OPS,
    AddLeads,
    ExistingLead,
    FindLeads,
    ListDrafts,
    ReadDocument,
    RecordToolEffect,
    SaveDocumentDraft,
    SaveDraft,
    SearchDocuments,
    SearchLeads,
    ToolAnswer,
    ToolEffect,
    ToolEffects,
    ToolOp,
    UpdateLead,
)


def writes(op: ToolOp) -> bool:
    return op.kind in WRITE_OPS


def answer(conn: duckdb.DuckDBPyConnection, op: ToolOp, now: float) -> ToolAnswer:
    user = op.user_id
    match op:
        case FindLeads():
            return leads.find(conn, user, op.tag, op.text, op.status, op.limit)
        case SearchLeads():
            return leads.search(conn, user, op.terms, op.limit)
        case AddLeads():
            return leads.add(conn, user, op.leads, op.source, now)
        case ExistingLead():
            return leads.existing(conn, user, op.name, op.email, op.company)
        case UpdateLead():
            return leads.update(conn, user, op, now)
        case SaveDraft():
            return drafts.save(conn, user, op.task_id, op.channel, op.target, op.subject, op.body, op.key, now)
        case ListDrafts():
            return drafts.of_user(conn, user, op.channel, op.limit)
        case SearchDocuments():
            return documents.search(conn, user, op.terms, op.doc_kind, op.limit)
        case ReadDocument():
            return documents.read(conn, user, op.document_id)
        case SaveDocumentDraft():
            return documents.save_draft(conn, user, op.task_id, op.title, op.content, op.key, now)
        case RecordToolEffect():
            return tool_effects.record(conn, user, op.task_id, op.tool, op.key, op.result, now)
        case ToolEffects():
            return tool_effects.of_step(conn, user, op.task_id, op.tool, op.besides)
        case ToolEffect():
            return tool_effects.by_key(conn, user, op.key)
