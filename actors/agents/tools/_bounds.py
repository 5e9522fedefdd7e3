"""The rules behind the writes a tool makes without a person's approval (README: "No write without a rule").

- **Labels.** A label change that hides mail — adding TRASH or SPAM or a CATEGORY_* tab, removing
  INBOX — is refused: hiding mail is the user's to do. Other label changes run at once, at most
  ``MAX_LABELED_PER_STEP`` message changes per step.
- **Gmail drafts.** Only a reply in the thread the step handles (the first thread it read), only to
  that thread's participants (From, To, Cc of its messages), at most ``MAX_DRAFTS_PER_STEP`` per step.
- **Memory.** Nothing a step read is written to memory (``drive_read`` has no way to); documents
  reach memory only when a person uploads them.

What a step did is kept as its tool effects (``actors.storage.tool_effects``: ids and counts, never
addresses or text), so the bounds hold across its attempts.
"""

from __future__ import annotations

from email.utils import getaddresses
from typing import Any

from actors.agents.context import ToolContext

MAX_LABELED_PER_STEP = 100  # messages whose labels one step may change
MAX_DRAFTS_PER_STEP = 5  # Gmail drafts one step may save
HIDING_ADDS = frozenset({"TRASH", "SPAM"})
HIDING_REMOVES = frozenset({"INBOX"})

LABELS_TOOL = "gmail_apply_labels"
DRAFT_TOOL = "gmail_create_draft"
READ_TOOL = "gmail_read_thread"


def hiding_changes(add: list[str], remove: list[str]) -> list[str]:
    """The label changes that would hide mail from the user ('add TRASH', 'remove INBOX', ...).

    Gmail resolves label names case-insensitively (and system labels by id), so 'trash' is TRASH.
    """
    hidden = [f"add {a.strip()}" for a in add
              if a.strip().upper() in HIDING_ADDS or a.strip().upper().startswith("CATEGORY_")]
    return hidden + [f"remove {r.strip()}" for r in remove if r.strip().upper() in HIDING_REMOVES]


async def record(ctx: ToolContext, tool: str, key: str, result: dict[str, Any]) -> bool:
    """Note what this step did (once per ``key``); False when it was noted already (a retried call)."""
    return await ctx.store.record_tool_effect(ctx.task_id, tool, key, result)


async def step_effects(ctx: ToolContext, tool: str, besides: str = "") -> list[dict[str, Any]]:
    """What this step recorded for ``tool``, oldest first (``besides``: leave that key out)."""
    return await ctx.store.tool_effects(ctx.task_id, tool, besides)


async def labeled_so_far(ctx: ToolContext, besides: str) -> int:
    """Messages whose labels this step changed, by calls other than ``besides`` (the same call again)."""
    return sum(int(e.get("messages", 0)) for e in await step_effects(ctx, LABELS_TOOL, besides))


async def drafts_so_far(ctx: ToolContext) -> int:
    return len(await step_effects(ctx, DRAFT_TOOL))


async def note_thread_read(ctx: ToolContext, thread_id: str) -> None:
    await record(ctx, READ_TOOL, f"{ctx.idempotency_key}:read_thread:{thread_id}", {"thread_id": thread_id})


async def handled_thread(ctx: ToolContext) -> str | None:
    """The thread this step handles: the first one it read."""
    reads = await step_effects(ctx, READ_TOOL)
    return str(reads[0]["thread_id"]) if reads else None


def participants(thread: dict[str, Any]) -> set[str]:
    """Lower-case addresses in the From, To and Cc of a thread's messages (``gmail.read_thread``);
    drafts do not count (a draft is not a message anyone exchanged)."""
    found: set[str] = set()
    for message in thread.get("messages") or []:
        if message.get("draft"):
            continue
        values = [str(message.get(h) or "") for h in ("from", "to", "cc")]
        found.update(addr.strip().lower() for _, addr in getaddresses(values) if "@" in addr)
    return found
