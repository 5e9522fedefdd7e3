"""A multipart upload read as it streams in, and refused (413) past a byte limit.

The declared ``Content-Length`` is checked before anything is read; then the bytes are counted as
they arrive, so a body with no length (chunked) or a false one is cut off at the limit rather than
held whole. Starlette's parser spools the file part (in memory up to 1 MiB, then a temporary
file). The route takes the raw request: a FastAPI ``File()`` parameter would read the whole body
before the route runs.

Behind Ray Serve the proxy queues what the client sends until the replica asks for it, so the
proxy may hold a little past the limit while the replica counts; it stops reading once the
replica has answered.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from core.memory_schemas import DocumentKind

MB = 1024 * 1024
FORM_ROOM = 64 * 1024  # the form's other fields and the parts' headers, beside the file


class UploadForm(BaseModel):
    """The form fields that come with the file (others are ignored, as FastAPI's forms do)."""

    model_config = ConfigDict(extra="ignore")
    kind: DocumentKind = Field("doc", description="doc, or sop (a procedure).")
    tags: str = Field("", max_length=500, description="Comma-separated tags.")


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    form: UploadForm


def openapi_body(file_description: str) -> dict[str, Any]:
    """The request body as the OpenAPI page shows it (the route reads it itself)."""
    fields = UploadForm.model_json_schema()["properties"]
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": file_description}, **fields},
    }}}}}


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the upload is larger than the limit of {limit / MB:g} MB (MAOS_MAX_UPLOAD_MB)")


def _missing(field: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": "Field required", "type": "missing"}])


async def read_upload(request: Request, limit: int, field: str = "file") -> Upload:
    """The file (at most ``limit`` bytes) and the form fields of a multipart request; 413 as soon as
    the body is known to be larger, whether declared or counted."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_ROOM:
        raise _too_large(limit)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise _missing(field)

    async def counted() -> AsyncGenerator[bytes, None]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit + FORM_ROOM:
                raise _too_large(limit)
            yield chunk

    parser = MultiPartParser(request.headers, counted(), max_files=1, max_fields=20, max_part_size=FORM_ROOM)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(400, f"the upload is not valid multipart form data: {exc.message}") from None
    try:
        upload = form.get(field)
        if not isinstance(upload, UploadFile):
            raise _missing(field)
        if upload.size is not None and upload.size > limit:
            raise _too_large(limit)
        fields = {k: v for k, v in form.multi_items() if k != field and isinstance(v, str)}
        try:
            checked = UploadForm.model_validate(fields)
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        return Upload(upload.filename or "upload", await upload.read(), checked)
    finally:
        await form.close()
