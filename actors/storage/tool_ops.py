"""The operations tools send (:data:`core.storage_schemas.ToolOp`), each run for the user it names.

The Store runs the ones in ``WRITE_OPS`` in its group commit and the others on its reader (:func:`run`);
either way through :func:`answer`, and every function reached from here keeps to ``op.user_id``'s rows.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import duckdb

from actors.storage import documents, drafts, leads, tool_effects
from core.errors import portable
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

if TYPE_CHECKING:
    from actors.storage.engine import Engine


async def run(db: Engine, ops: list[ToolOp]) -> list[ToolAnswer | Exception]:
    """Each operation's answer, or the error it raised (as itself when it can cross processes). The
    writes share a group commit; the reads run on the reader thread, so a long one (a keyword search
    over many saved drafts) holds up no step's commit."""
    done = await asyncio.gather(*((db.write if writes(op) else db.read_aside)(answer, op) for op in ops),
                                return_exceptions=True)
    return [portable(r) if isinstance(r, BaseException) else r for r in done]


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
