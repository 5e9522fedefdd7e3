"""Gmail's search syntax, the subset the fake understands; every term must hold (AND).

``in:`` ``is:`` ``label:`` ``from:`` ``to:`` ``cc:`` ``subject:`` ``after:``/``before:`` (epoch
seconds or YYYY/MM/DD, UTC) ``newer_than:``/``older_than:`` (Nd, Nm, Ny) ``rfc822msgid:``, bare
words and "quoted phrases" (searched in subject, body and sender), ``-term`` to negate. As in
Gmail, spam and trash are left out unless the query names them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from maos_testing.google._fake_wire import ApiError

_TOKEN = re.compile(r'-?[A-Za-z_0-9]+:(?:"[^"]*"|\([^)]*\)|\S+)|-?"[^"]*"|\S+')
_IN = {"inbox": "INBOX", "sent": "SENT", "trash": "TRASH", "spam": "SPAM", "drafts": "DRAFT",
       "draft": "DRAFT", "starred": "STARRED", "important": "IMPORTANT", "unread": "UNREAD"}
_UNITS = {"d": 86400, "m": 30 * 86400, "y": 365 * 86400}


@dataclass(frozen=True)
class Searchable:
    """What a query looks at in one message."""

    subject: str
    body: str
    sender: str
    recipients: str  # To and Cc
    cc: str
    message_id: str  # without angle brackets
    label_ids: frozenset[str]
    date_s: float


Predicate = Callable[[Searchable], bool]


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] in "\"(" and value[-1] in "\")" else value


def _date(value: str) -> float:
    if value.isdigit():
        return float(value)
    match = re.fullmatch(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})", value)
    if match is None:
        raise ApiError(400, f"Invalid date in query: {value}", "invalidArgument", "q")
    year, month, day = (int(g) for g in match.groups())
    return datetime(year, month, day, tzinfo=UTC).timestamp()


def _age(value: str) -> float:
    match = re.fullmatch(r"(\d+)([dmy])", value.lower())
    if match is None:
        raise ApiError(400, f"Invalid age in query: {value}", "invalidArgument", "q")
    return time.time() - int(match.group(1)) * _UNITS[match.group(2)]


def _contains(text: str, needle: str) -> bool:
    return needle.lower() in text.lower()


def _term(operator: str, value: str, label_id: Callable[[str], str | None]) -> Predicate:
    if operator in ("in", "is"):
        if value.lower() in ("anywhere", "read"):
            return (lambda m: True) if value.lower() == "anywhere" else (lambda m: "UNREAD" not in m.label_ids)
        label = _IN.get(value.lower(), value.upper())
        return lambda m: label in m.label_ids
    if operator == "label":
        found = label_id(value)
        return (lambda m: False) if found is None else (lambda m: found in m.label_ids)
    if operator == "from":
        return lambda m: _contains(m.sender, value)
    if operator == "to":
        return lambda m: _contains(m.recipients, value)
    if operator == "cc":
        return lambda m: _contains(m.cc, value)
    if operator == "subject":
        words = value.split()
        return lambda m: all(_contains(m.subject, word) for word in words)
    if operator in ("after", "before", "newer_than", "older_than"):
        bound = _date(value) if operator in ("after", "before") else _age(value)
        if operator in ("after", "newer_than"):
            return lambda m: m.date_s >= bound
        return lambda m: m.date_s < bound
    if operator == "rfc822msgid":
        wanted = value.strip().strip("<>")
        return lambda m: m.message_id == wanted
    text = f"{operator}:{value}" if operator else value
    return lambda m: _contains(f"{m.subject}\n{m.body}\n{m.sender}", text)


def compile_query(query: str, label_id: Callable[[str], str | None],
                  include_spam_trash: bool = False) -> Predicate:
    """A predicate for ``query``; ``label_id`` maps a label name or id to its id (None: no such label)."""
    terms: list[Predicate] = []
    names_bin = include_spam_trash
    for token in _TOKEN.findall(query or ""):
        negate = token.startswith("-") and len(token) > 1
        token = token[1:] if negate else token
        if token in ("AND", "and"):
            continue
        operator, sep, value = token.partition(":")
        if not sep or token.startswith('"'):
            operator, value = "", token
        operator = operator.lower()
        value = _unquote(value)
        if operator in ("in", "label") and value.lower() in ("spam", "trash", "anywhere"):
            names_bin = True
        predicate = _term(operator, value, label_id)
        terms.append((lambda p: lambda m: not p(m))(predicate) if negate else predicate)
    if not names_bin:
        terms.append(lambda m: not ({"SPAM", "TRASH"} & m.label_ids))
    return lambda m: all(term(m) for term in terms)
