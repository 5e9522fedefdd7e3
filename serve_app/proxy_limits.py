"""The byte limit at Ray Serve's HTTP proxy, in front of the app.

Serve's proxy reads what a client sends into a queue of its own (no backpressure) while the
replica works, so an endless upload would pile up in the proxy even though the app stops reading
at ``max_upload_mb`` (``serve_app.uploads``). This middleware runs in the proxy
(``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``, set before Ray starts: see
``core.settings.apply_ray_environment``): a declared length past the cap is answered 413 at once,
and a body that streams past it is cut off there (the request ends as if the client had gone).
The cap is the upload limit from the environment plus room for the form around the file; the app
applies the exact limit itself.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware import Middleware
from starlette.responses import JSONResponse

from core.settings import Settings

MB = 1024 * 1024
ROOM = MB  # form fields, part headers, and any JSON request: none comes near this


class BodyCap:
    """Pure ASGI: no request body past ``max_bytes`` is read from the client."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(self.max_bytes)(scope, receive, send)
            return
        seen = 0
        started = answered = False

        async def sending(message: dict[str, Any]) -> None:
            nonlocal started
            if answered:
                return  # the client has its 413 already
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def counted() -> dict[str, Any]:
            nonlocal seen, answered
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # answer now, and read no more of it
                    if not started and not answered:
                        answered = True
                        await _refuse(self.max_bytes)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, counted, sending)
        except Exception:
            if not answered:
                raise  # a request cut off here ends the proxy's handling of it with an error: answered


def _refuse(max_bytes: int) -> JSONResponse:
    return JSONResponse({"detail": f"the request body is larger than {max_bytes // MB} MB (uploads: MAOS_MAX_UPLOAD_MB)"},
                        status_code=413, headers={"Connection": "close"})


def middlewares() -> list[Middleware]:
    """What the proxy calls at its start (it reads the environment of the Ray node)."""
    return [Middleware(BodyCap, max_bytes=int(Settings().max_upload_mb * MB) + ROOM)]
