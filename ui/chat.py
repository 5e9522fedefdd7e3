"""Chat page handlers: send a message, then follow the run's event stream and yield live updates.

A run lives on the server: closing the tab stops only the following. Opening the conversation
again (History → Continue in Chat) replays the run's events and, if it is still going, follows it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from core.schemas import Draft, RunEvent
from ui.client import ApiClient, ApiError
from ui.progress import RunProgress
from ui.render import (
    ChatMessages,
    bubble,
    conversation_messages,
    drafts_html,
    normalise_history,
    plan_html,
    sources_html,
)

YIELD_EVERY_S = 0.15  # tokens arrive faster than a browser needs them: coalesce updates
DRAFTS_EVERY_S = 2.0

# (chat history, plan checklist HTML, drafts HTML, sources HTML)
Frame = tuple[ChatMessages, str, str, str]
# (chat history, message box, conversation id, plan HTML, drafts HTML, sources HTML, run id)
SubmitFrame = tuple[ChatMessages, str, str | None, str, str, str, str | None]
# (chat history, conversation id, plan HTML, drafts HTML, sources HTML, run id)
OpenFrame = tuple[ChatMessages, str | None, str, str, str, str | None]


class ChatHandlers:
    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def _drafts(self, run_id: str) -> list[Draft]:
        try:
            return await self.client.run_drafts(run_id)
        except ApiError:
            return []

    async def _pump(self, run_id: str, out: asyncio.Queue[RunEvent | ApiError | None]) -> None:
        try:
            async for event in self.client.run_events(run_id):
                await out.put(event)
            await out.put(None)
        except ApiError as exc:
            await out.put(exc)

    async def follow(self, run_id: str, history: ChatMessages, reply: bool) -> AsyncIterator[Frame]:
        """Fold the run's events into state; with ``reply`` the last chat bubble is the run's answer.

        Bursts (tokens, hundreds of steps finishing) are coalesced into one update per
        YIELD_EVERY_S, and an update held back goes out as soon as the stream goes quiet."""
        p = RunProgress(run_id)
        drafts: list[Draft] = []
        last_yield = last_drafts = 0.0
        held = False
        events: asyncio.Queue[RunEvent | ApiError | None] = asyncio.Queue()
        reader = asyncio.create_task(self._pump(run_id, events))

        def frame() -> Frame:
            if reply:
                history[-1]["content"] = bubble(p)
            return history, plan_html(p), drafts_html(drafts), sources_html(p.sources, p.ended)

        try:
            while True:
                try:
                    item = await asyncio.wait_for(events.get(), YIELD_EVERY_S if held else None)
                except TimeoutError:  # the stream went quiet: send what was held back
                    held, last_yield = False, time.monotonic()
                    yield frame()
                    continue
                if item is None:
                    break
                if isinstance(item, ApiError):
                    if reply:
                        history[-1]["content"] = bubble(p) + (f"\n\n✖ Lost touch with the run ({item}). It goes on "
                                                              "on the server: open the conversation from History "
                                                              "to see it.")
                    yield history, plan_html(p), drafts_html(drafts), sources_html(p.sources)
                    return
                p.apply(item)
                now = time.monotonic()
                if item.kind == "task" and item.status == "done" and now - last_drafts >= DRAFTS_EVERY_S:
                    drafts, last_drafts = await self._drafts(run_id), now
                if item.kind not in ("plan", "end", "memory") and now - last_yield < YIELD_EVERY_S:
                    held = True
                    continue
                held, last_yield = False, now
                yield frame()
        finally:
            reader.cancel()  # the page went away or the run ended: stop reading its stream
        try:  # the events carry excerpts; the task table has the whole outputs, the run all its sources
            view = await self.client.get_run(run_id)
            p.absorb_tasks(view.tasks)
            p.add_sources(view.sources)
        except ApiError:
            pass
        drafts = await self._drafts(run_id)
        yield frame()

    async def submit(self, message: str, value: list[Any] | None,
                     conversation_id: str | None) -> AsyncIterator[SubmitFrame]:
        history = normalise_history(value)
        text = (message or "").strip()
        if not text:
            yield history, message, conversation_id, plan_html(None), "", "", None
            return
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": "◐ Sending…"}]
        yield history, "", conversation_id, plan_html(RunProgress("")), "", "", None
        try:
            if conversation_id is None:
                conversation_id = (await self.client.create_conversation()).id
            accepted = await self.client.post_message(conversation_id, text)
        except ApiError as exc:
            history[-1]["content"] = f"✖ Not sent: {exc}"
            yield history, text, conversation_id, plan_html(None), "", "", None
            return
        async for shown, plan, drafts, sources in self.follow(accepted.run_id, history, reply=True):
            yield shown, "", conversation_id, plan, drafts, sources, accepted.run_id

    async def stop(self, run_id: str | None) -> None:
        """The Stop button: cancel the run shown; its event stream then ends it in the chat (cancelled, with
        what was done)."""
        if not run_id:
            return
        try:
            out = await self.client.cancel_run(run_id)
        except ApiError as exc:
            gr.Warning(f"Could not stop the run: {exc}")
            return
        if not out.cancelled:
            gr.Info(f"The run had already ended ({out.status}).")

    async def open(self, conversation_id: str | None) -> AsyncIterator[OpenFrame]:
        """Show a conversation in the chat; its latest run's plan and sources, followed live if it still runs."""
        if not conversation_id:
            yield [], None, plan_html(None), "", "", None
            return
        try:
            view = await self.client.get_conversation(conversation_id)
        except ApiError as exc:
            yield [{"role": "assistant", "content": f"✖ Could not open it: {exc}"}], None, plan_html(None), "", "", None
            return
        history = conversation_messages(view)
        if not view.runs:
            yield history, conversation_id, plan_html(None), "", "", None
            return
        latest = view.runs[-1]
        running = latest.finished_at is None and latest.status in ("planning", "running", "summarizing")
        if running:
            history.append({"role": "assistant", "content": "◐ Catching up…"})
        async for shown, plan, drafts, sources in self.follow(latest.id, history, reply=running):
            yield shown, conversation_id, plan, drafts, sources, latest.id
