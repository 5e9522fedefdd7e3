"""The fake Google server's request, reply and error types, and small format helpers."""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Json = dict[str, Any]

_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                 501: "UNIMPLEMENTED", 503: "UNAVAILABLE"}
_REASONS = {400: "badRequest", 401: "authError", 403: "forbidden", 404: "notFound", 409: "conflict",
            410: "deleted", 429: "rateLimitExceeded", 500: "backendError", 501: "notImplemented",
            503: "backendError"}
_MESSAGES = {"rateLimitExceeded": "Rate Limit Exceeded", "userRateLimitExceeded": "User Rate Limit Exceeded",
             "notFound": "Requested entity was not found.", "backendError": "Backend Error",
             "deleted": "Resource has been deleted", "forbidden": "Forbidden", "conflict": "Conflict",
             "badRequest": "Bad Request", "authError": "Invalid Credentials"}


class ApiError(Exception):
    """A Google-style error answer: raised by handlers, turned into a reply by the server."""

    def __init__(self, status: int, message: str | None = None, reason: str | None = None,
                 location: str | None = None) -> None:
        super().__init__(status, message, reason, location)
        self.status = status
        self.reason = reason or default_reason(status)
        self.message = message or _MESSAGES.get(self.reason, self.reason)
        self.location = location

    def reply(self, headers: dict[str, str] | None = None) -> Reply:
        return Reply(self.status, error_body(self.status, self.message, self.reason, self.location),
                     headers=dict(headers or {}))


def default_reason(status: int) -> str:
    return _REASONS.get(status, "backendError" if status >= 500 else "badRequest")


def error_body(status: int, message: str, reason: str, location: str | None = None) -> Json:
    """``{"error": {...}}`` the way Google's JSON APIs answer an error."""
    item: Json = {"message": message, "domain": "global", "reason": reason}
    if location:
        item.update(location=location, locationType="parameter")
    error: Json = {"code": status, "message": message, "errors": [item]}
    if status in _STATUS_NAMES:
        error["status"] = _STATUS_NAMES[status]
    return {"error": error}


@dataclass
class Reply:
    """One HTTP answer: a JSON document, or raw bytes with their content type."""

    status: int = 200
    json: Json | None = None
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        return json.dumps(self.json).encode() if self.json is not None else self.body


@dataclass
class ApiRequest:
    """One call of a discovery method, as the handlers see it."""

    method_id: str
    http_method: str
    path_params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    upload: bool = False

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def flag(self, name: str) -> bool:
        return (self.arg(name) or "").lower() == "true"

    def int_arg(self, name: str, default: int, most: int) -> int:
        raw = self.arg(name)
        try:
            value = default if raw is None else int(raw)
        except ValueError:
            raise ApiError(400, f"Invalid value '{raw}' for {name}", "invalid", name) from None
        return max(1, min(value, most))

    def json(self) -> Json:
        """The JSON body ({} when empty); 400 when it is not a JSON object."""
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except ValueError:
            raise ApiError(400, "Invalid JSON payload received.", "parseError") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid JSON payload received.", "parseError")
        return data

    def upload_parts(self) -> tuple[Json, bytes | None, str | None]:
        """(metadata, media bytes, media type) of an upload; the JSON body otherwise."""
        ctype = self.headers.get("content-type", "")
        kind = self.arg("uploadType", "")
        if not self.upload:
            return self.json(), None, None
        if kind == "multipart" or ctype.startswith("multipart/"):
            parts = split_multipart(self.body, ctype)
            if len(parts) != 2:
                raise ApiError(400, "Multipart upload needs a metadata part and a media part", "badContent")
            (_, meta_bytes), (media_headers, media) = parts
            meta = ApiRequest(self.method_id, "POST", {}, {}, {}, meta_bytes).json()
            return meta, media, media_headers.get("content-type", "application/octet-stream")
        if kind == "media":
            return {}, self.body, ctype or "application/octet-stream"
        raise ApiError(501, f"uploadType={kind or '(none)'} is not supported by the fake server",
                       "notImplemented")


def split_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart body as (lower-case headers, content); binary-safe."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise ApiError(400, "Multipart body without a boundary", "badContent")
    delimiter = b"--" + match.group(1).encode()
    parts: list[tuple[dict[str, str], bytes]] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk[1:] if chunk.startswith(b"\n") else chunk
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep or b"\n\n" in head:
            head, _, content = chunk.partition(b"\n\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        headers = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.strip():
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise ApiError(400, "Invalid base64url value", "invalidArgument") from None


def rfc3339(ts: float) -> str:
    """``2024-05-01T10:00:00.000Z``, Google's timestamp format."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def parse_time(text: str, time_zone: str | None = None, what: str = "time") -> float:
    """Epoch seconds from RFC 3339 (``Z`` or an offset) or a bare date; naive ones in ``time_zone``."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ApiError(400, f"Bad Request: invalid {what} '{text}'", "badRequest", what) from None
    if moment.tzinfo is None:
        try:
            zone: Any = ZoneInfo(time_zone) if time_zone else UTC
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp()


def strip_tags(markup: str) -> str:
    """Plain text from simple HTML."""
    text = re.sub(r"(?is)<(script|style).*?</\1>", "", markup)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()
