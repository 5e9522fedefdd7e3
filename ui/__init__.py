"""The Gradio web UI, mounted by serve_app at ``/``."""

from __future__ import annotations

from typing import Any


def mount_ui(api: Any, settings: Any) -> None:
    """Placeholder until the UI lands: send ``/`` to the API docs."""
    from fastapi.responses import RedirectResponse

    @api.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/docs")
