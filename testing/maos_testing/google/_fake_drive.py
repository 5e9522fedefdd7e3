"""The fake Drive: files with metadata and content; Google Docs hold plain text."""

from __future__ import annotations

import copy
import html
import secrets
import time
from collections.abc import Callable

from maos_testing.google._fake_drive_query import compile_query
from maos_testing.google._fake_wire import ApiError, ApiRequest, Json, Reply, rfc3339, strip_tags

Handler = Callable[[ApiRequest], Reply]
GOOGLE_APPS = "application/vnd.google-apps."
DOCUMENT = GOOGLE_APPS + "document"
_EXPORT_TEXT = ("text/plain", "text/markdown", "text/csv", "text/tab-separated-values")


def _link(file_id: str, mime_type: str) -> str:
    kinds = {DOCUMENT: "document", GOOGLE_APPS + "spreadsheet": "spreadsheets",
             GOOGLE_APPS + "presentation": "presentation"}
    if mime_type in kinds:
        return f"https://docs.google.com/{kinds[mime_type]}/d/{file_id}/edit?usp=drivesdk"
    if mime_type == GOOGLE_APPS + "folder":
        return f"https://drive.google.com/drive/folders/{file_id}"
    return f"https://drive.google.com/file/d/{file_id}/view?usp=drivesdk"


class DriveState:
    def __init__(self) -> None:
        self.files: dict[str, Json] = {}  # id -> metadata, as files.get answers it
        self.content: dict[str, bytes] = {}
        self._counter = 0

    def _text_of(self, meta: Json) -> str:
        content = self.content.get(meta["id"], b"").decode("utf-8", "replace")
        return "\n".join([meta["name"], meta.get("description", ""), content])

    def create(self, meta: Json, content: bytes | None, media_type: str | None) -> Json:
        """Store a file; metadata as the client sent it, content converted as Drive would."""
        self._counter += 1
        file_id = f"1F{self._counter:06d}{secrets.token_hex(8)}"
        mime_type = str(meta.get("mimeType") or media_type or "application/octet-stream")
        now = rfc3339(time.time())
        record: Json = {"kind": "drive#file", "id": file_id, "name": str(meta.get("name") or "Untitled"),
                        "mimeType": mime_type, "parents": list(meta.get("parents") or ["root"]),
                        "createdTime": now, "modifiedTime": now, "trashed": False, "starred": False,
                        "webViewLink": _link(file_id, mime_type)}
        for key in ("appProperties", "properties", "description"):
            if meta.get(key):
                record[key] = copy.deepcopy(meta[key])
        data = content or b""
        if mime_type.startswith(GOOGLE_APPS) and media_type == "text/html":
            data = strip_tags(data.decode("utf-8", "replace")).encode()
        if not mime_type.startswith(GOOGLE_APPS):
            record["size"] = str(len(data))
        self.files[file_id] = record
        self.content[file_id] = data
        return copy.deepcopy(record)

    def _file(self, req: ApiRequest) -> Json:
        found = self.files.get(req.path_params["fileId"])
        if found is None:
            raise ApiError(404, f"File not found: {req.path_params['fileId']}.", "notFound", "fileId")
        return found

    def handlers(self) -> dict[str, Handler]:
        return {"drive.files.list": self.list_files, "drive.files.get": self.get_file,
                "drive.files.export": self.export_file, "drive.files.create": self.create_file}

    def list_files(self, req: ApiRequest) -> Reply:
        predicate = compile_query(req.arg("q", "") or "", self._text_of)
        found = [meta for meta in self.files.values() if predicate(meta)]
        order = (req.arg("orderBy") or "").split(",")[0].strip().split()
        if order and order[0] in ("name", "modifiedTime", "createdTime"):
            found.sort(key=lambda meta: meta[order[0]], reverse=order[-1] == "desc")
        start = int(req.arg("pageToken") or 0)
        size = req.int_arg("pageSize", 100, 1000)
        out: Json = {"kind": "drive#fileList", "incompleteSearch": False,
                     "files": copy.deepcopy(found[start:start + size])}
        if start + size < len(found):
            out["nextPageToken"] = str(start + size)
        return Reply(json=out)

    def get_file(self, req: ApiRequest) -> Reply:
        meta = self._file(req)
        if req.arg("alt") != "media":
            return Reply(json=copy.deepcopy(meta))
        if meta["mimeType"].startswith(GOOGLE_APPS):
            raise ApiError(403, "Only files with binary content can be downloaded. Use Export with Docs "
                                "Editors files.", "fileNotDownloadable", "alt")
        return Reply(body=self.content[meta["id"]], content_type=meta["mimeType"])

    def export_file(self, req: ApiRequest) -> Reply:
        meta = self._file(req)
        target = req.arg("mimeType")
        if not target:
            raise ApiError(400, "Required parameter: mimeType", "required", "mimeType")
        if not meta["mimeType"].startswith(GOOGLE_APPS):
            raise ApiError(403, "Export only supports Docs Editors files.", "fileNotExportable")
        text = self.content[meta["id"]].decode("utf-8", "replace")
        if target in _EXPORT_TEXT:
            return Reply(body=text.encode(), content_type=f"{target}; charset=utf-8")
        if target == "text/html":
            paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines())
            return Reply(body=f"<html><body>{paragraphs}</body></html>".encode(), content_type="text/html")
        raise ApiError(400, "The requested conversion is not supported.", "badRequest", "mimeType")

    def create_file(self, req: ApiRequest) -> Reply:
        meta, media, media_type = req.upload_parts()
        return Reply(json=self.create(meta, media, media_type))
