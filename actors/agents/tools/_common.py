"""Small helpers shared by the tool modules: ids, times, tags, addresses, search terms."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from core.errors import ToolError

_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
_WORD = re.compile(r"[a-z0-9][a-z0-9'@._-]*")
_STOPWORDS = frozenset(
    "a an and are as at be by for from how i in is it me my of on or our the this to us we what when"
    " where which who why with you your".split()
)


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def now() -> float:
    return time.time()


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string, for the model to read."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="minutes")


def parse_when(value: str, argument: str, allow_past: bool = False) -> float:
    """ISO date or datetime to epoch seconds. A date means 00:00 UTC; a time without offset is UTC."""
    text = value.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(
            f"{argument} '{value}' is not an ISO date or datetime (YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    today = datetime.now(UTC).date()
    if not allow_past and when.astimezone(UTC).date() < today:
        raise ToolError(f"{argument} '{value}' is in the past (today is {today.isoformat()})")
    return when.timestamp()


def normalize_tags(tags: Iterable[str]) -> list[str]:
    """Trimmed, lower-case, de-duplicated tags in first-seen order."""
    seen: dict[str, None] = {}
    for tag in tags:
        clean = tag.strip().lower()
        if clean:
            seen.setdefault(clean, None)
    return list(seen)


def is_email(value: str) -> bool:
    return bool(_EMAIL.match(value.strip()))


def check_emails(values: Iterable[str], argument: str) -> list[str]:
    """Trimmed addresses; a ToolError names the first one that is not an address."""
    out = [v.strip() for v in values if v.strip()]
    if not out:
        raise ToolError(f"{argument} is empty: give at least one email address")
    for v in out:
        if not is_email(v):
            raise ToolError(f"{argument}: '{v}' is not an email address (find_leads can look addresses up)")
    return out


def args_hash(**arguments: object) -> str:
    """Stable short hash of tool arguments, for idempotency keys."""
    blob = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def search_terms(query: str) -> list[str]:
    """Lower-case words of a query, stop words and one-letter words dropped, first-seen order."""
    words = (w.strip("'._-") for w in _WORD.findall(query.lower()))
    return list(dict.fromkeys(w for w in words if len(w) > 1 and w not in _STOPWORDS))


def snippet(text: str, terms: list[str], width: int = 160) -> str:
    """About ``width`` characters of ``text`` around the first term found."""
    flat = " ".join(text.split())
    low = flat.lower()
    hits = [i for i in (low.find(t) for t in terms) if i >= 0]
    start = max(0, min(hits) - width // 3) if hits else 0
    piece = flat[start:start + width]
    return ("…" if start > 0 else "") + piece + ("…" if start + width < len(flat) else "")
