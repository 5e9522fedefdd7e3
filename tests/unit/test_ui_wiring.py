"""How the web UI's events are wired, read from the built Blocks' config (no server, no browser)."""

from __future__ import annotations

from typing import Any

import pytest

from ui.app import build_blocks
from ui.client import ApiClient


@pytest.mark.parametrize(("page", "note", "searches"), [
    ("history", "history-note", [("history-search", "click"), ("history-q", "submit")]),
    ("memory", "memory-docs-note", [("memory-docs-refresh", "click"), ("memory-docs-q", "submit"),
                                    ("memory-docs-kind", "input")]),
    ("approvals", "audit-note", [("audit-search", "click"), ("audit-run", "submit"), ("audit-action", "submit")]),
])
def test_a_search_of_ones_own_cancels_the_listing_that_opening_the_page_started(
        page: str, note: str, searches: list[tuple[str, str]]) -> None:
    """Opening a page lists what it shows; a search typed meanwhile must not be overwritten when that
    listing answers after it (seen in CI: "13 conversation(s)" after searching History for one word)."""
    demo = build_blocks(ApiClient("http://api.test"), None)
    deps: list[dict[str, Any]] = demo.get_config_file()["dependencies"]
    elem = {block_id: getattr(block, "elem_id", None) for block_id, block in demo.blocks.items()}

    def triggered_by(elem_id: str, event: str) -> list[dict[str, Any]]:
        return [d for d in deps if any(elem.get(t) == elem_id and e == event for t, e in d["targets"])]

    note_id = next(i for i, e in elem.items() if e == note)
    (opened,) = triggered_by(f"nav-{page}", "click")
    (listing,) = [d["id"] for d in deps if d.get("trigger_after") == opened["id"] and note_id in d["outputs"]]
    for elem_id, event in searches:
        assert any(note_id in d["outputs"] for d in triggered_by(elem_id, event)), (elem_id, event)
        cancelled = {c for d in triggered_by(elem_id, event) for c in d["cancels"]}
        assert listing in cancelled, (elem_id, event)
