"""Google Drive v3: search files, read one as text, and create a Google Doc exactly once.

Google's own formats are exported (Docs and Slides as text, Sheets as CSV); other files are
downloaded and read by type, PDF and DOCX through the document extractor (``core.extract``, which
uploads to memory go through too). A Doc created for an action carries
``appProperties.maos_action`` so ``find_created`` can tell whether it exists.
"""

from __future__ import annotations

from typing import Any

from googleapiclient.http import MediaInMemoryUpload

from core.errors import GoogleApiError, IngestError
from core.extract import extract
from integrations.google._mime import html_to_text
from integrations.google.api import execute

_FIELDS = "id,name,mimeType,modifiedTime,webViewLink,size"
_DOC = "application/vnd.google-apps.document"
_EXPORTS = {  # Google format → (export type, extension)
    _DOC: ("text/plain", ".txt"),
    "application/vnd.google-apps.spreadsheet": ("text/csv", ".csv"),
    "application/vnd.google-apps.presentation": ("text/plain", ".txt"),
}
_EXTRACTED = {  # downloaded type → extension the document extractor reads it by
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}
_TEXT_TYPES = ("application/json", "application/xml", "application/csv", "application/x-yaml", "application/yaml")
_MAX_DOWNLOAD = 25 * 1024 * 1024
_MAX_SEARCH = 100


def quote(text: str) -> str:
    """A Drive query string literal: single-quoted, with backslashes and quotes escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _file(raw: dict[str, Any]) -> dict[str, Any]:
    return {"id": raw.get("id"), "name": raw.get("name"), "mime_type": raw.get("mimeType"),
            "modified": raw.get("modifiedTime"), "link": raw.get("webViewLink")}


def list_files(svc: Any, query: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Files not in the trash whose name or text contains ``query`` (all files without one),
    most recently modified first when there is no query."""
    params: dict[str, Any] = {"pageSize": max(1, min(limit, _MAX_SEARCH)), "fields": f"files({_FIELDS})"}
    clauses = ["trashed = false"]
    if query is not None and query.strip():
        literal = quote(query.strip())
        clauses.append(f"(name contains {literal} or fullText contains {literal})")
    else:
        params["orderBy"] = "modifiedTime desc"  # Drive refuses orderBy with fullText search
    listed = execute(svc.files().list(q=" and ".join(clauses), **params), what="the file search")
    return [_file(f) for f in listed.get("files") or []]


def read(svc: Any, file_id: str, max_chars: int = 20000) -> dict[str, Any]:
    """A file's text: {id, name, mime_type, text, truncated}."""
    what = f"file '{file_id}'"
    meta = execute(svc.files().get(fileId=file_id, fields=_FIELDS), what=what)
    name, mime = str(meta.get("name", file_id)), str(meta.get("mimeType", ""))
    if mime in _EXPORTS:
        export_type, _ = _EXPORTS[mime]
        data = execute(svc.files().export(fileId=file_id, mimeType=export_type), what=what)
        text = _decode(data).lstrip("\ufeff")
    else:
        if mime.startswith("application/vnd.google-apps."):
            raise _cannot_read(name, mime)
        readable = mime.startswith("text/") or mime in _TEXT_TYPES or mime in _EXTRACTED
        if not readable:
            raise _cannot_read(name, mime)
        if int(meta.get("size") or 0) > _MAX_DOWNLOAD:
            raise GoogleApiError(f"Drive: file '{name}' is too large to read "
                                 f"({int(meta['size']) // 1_000_000} MB; at most {_MAX_DOWNLOAD // 1_000_000} MB)",
                                 400, "fileTooLarge")
        data = execute(svc.files().get_media(fileId=file_id), what=what)
        text = _text_of(name, mime, data if isinstance(data, bytes) else str(data).encode())
    text = text.strip()
    truncated = len(text) > max_chars
    return {"id": meta.get("id", file_id), "name": name, "mime_type": mime, "text": text[:max_chars],
            "truncated": truncated}


def _decode(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def _text_of(name: str, mime: str, data: bytes) -> str:
    if mime in _EXTRACTED:
        suffix = _EXTRACTED[mime]
        filename = name if name.lower().endswith(suffix) else name + suffix
        try:
            return extract(filename, data).text
        except IngestError as exc:
            raise GoogleApiError(f"Drive: cannot read file '{name}': {exc.message}", 400, "unreadable") from None
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    return html_to_text(text) if mime == "text/html" else text


def _cannot_read(name: str, mime: str) -> GoogleApiError:
    return GoogleApiError(f"Drive: cannot read files of type {mime or 'unknown'} ('{name}'); readable: Google "
                          "Docs, Sheets, Slides, text, CSV, JSON, PDF and DOCX", 400, "unsupportedType")


def create_doc(svc: Any, *, title: str, content: str, action_id: str, folder_id: str | None = None) -> dict[str, Any]:
    """A new Google Doc holding ``content`` (plain text), tagged with the action; {id, name, link}.
    A failure with reason 'unknown_outcome' may have created it: check ``find_created`` first."""
    body: dict[str, Any] = {"name": title, "mimeType": _DOC, "appProperties": {"maos_action": action_id}}
    if folder_id is not None:
        body["parents"] = [folder_id]
    media = MediaInMemoryUpload(content.encode("utf-8"), mimetype="text/plain", resumable=False)
    made = execute(svc.files().create(body=body, media_body=media, fields="id,name,webViewLink"),
                   what=f"the document '{title}'")
    return {"id": made["id"], "name": made.get("name", title), "link": made.get("webViewLink")}


def find_created(svc: Any, action_id: str) -> dict[str, Any] | None:
    """The file created for ``action_id`` (trashed ones too: it was created), or None."""
    q = f"appProperties has {{ key='maos_action' and value={quote(action_id)} }}"
    listed = execute(svc.files().list(q=q, pageSize=5, fields="files(id,name,webViewLink)"),
                     what="the created-file lookup")
    files = listed.get("files") or []
    if not files:
        return None
    return {"id": files[0]["id"], "name": files[0].get("name"), "link": files[0].get("webViewLink")}
