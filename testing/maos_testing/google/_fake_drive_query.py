"""Drive's ``q`` language, the subset the fake understands.

Terms: ``name``/``fullText``/``mimeType`` with ``contains``, ``=``, ``!=``; ``trashed``/``starred``
``= true|false``; ``modifiedTime``/``createdTime`` compared (``<``, ``>=``...) with an RFC 3339
string; ``'<id>' in parents``; ``appProperties has { key='k' and value='v' }`` (also
``properties``); combined with ``and``, ``or``, ``not`` and parentheses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from maos_testing.google._fake_wire import ApiError, Json, parse_time

_TOKEN = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|(!=|<=|>=|=|<|>|\(|\)|\{|\})|([A-Za-z_][\w.]*)|(-?\d+(?:\.\d+)?))")
Predicate = Callable[[Json], bool]
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _invalid(detail: str) -> ApiError:
    return ApiError(400, f"Invalid Value: {detail}", "invalid", "q")


def _tokens(query: str) -> list[tuple[str, str]]:
    out, pos, query = [], 0, query.strip()
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None or match.end() == pos:
            raise _invalid(f"cannot read the query at {query[pos:pos + 20]!r}")
        text, op, word, number = match.groups()
        if text is not None:
            out.append(("str", re.sub(r"\\(.)", r"\1", text[1:-1])))
        elif op is not None:
            out.append(("op", op))
        elif word is not None:
            out.append(("word", word))
        else:
            out.append(("num", number))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, query: str, text_of: Callable[[Json], str]) -> None:
        self.tokens = _tokens(query)
        self.pos = 0
        self.text_of = text_of

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, kind: str, value: str | None = None) -> str:
        got_kind, got = self.peek()
        if got_kind != kind or (value is not None and got.lower() != value.lower()):
            raise _invalid(f"expected {value or kind}, found {got or 'the end'!r}")
        self.pos += 1
        return got

    def is_word(self, value: str) -> bool:
        kind, got = self.peek()
        return kind == "word" and got.lower() == value

    def parse(self) -> Predicate:
        predicate = self.expr()
        self.take("end")
        return predicate

    def expr(self) -> Predicate:
        terms = [self.conjunction()]
        while self.is_word("or"):
            self.pos += 1
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else lambda f: any(t(f) for t in terms)

    def conjunction(self) -> Predicate:
        terms = [self.unary()]
        while self.is_word("and"):
            self.pos += 1
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else lambda f: all(t(f) for t in terms)

    def unary(self) -> Predicate:
        if self.is_word("not"):
            self.pos += 1
            inner = self.unary()
            return lambda f: not inner(f)
        if self.peek() == ("op", "("):
            self.pos += 1
            inner = self.expr()
            self.take("op", ")")
            return inner
        return self.condition()

    def condition(self) -> Predicate:
        kind, value = self.peek()
        if kind == "str":
            self.pos += 1
            self.take("word", "in")
            collection = self.take("word")
            if collection != "parents":
                raise _invalid(f"'in {collection}' is not supported")
            return lambda f: value in f["parents"]
        field = self.take("word")
        if self.is_word("has"):
            self.pos += 1
            return self.has(field)
        op = self.take("word", "contains") if self.is_word("contains") else self.take("op")
        return self.compare(field, op.lower(), self.value())

    def has(self, field: str) -> Predicate:
        if field not in ("appProperties", "properties"):
            raise _invalid(f"'{field} has' is not supported")
        self.take("op", "{")
        self.take("word", "key")
        self.take("op", "=")
        key = self.take("str")
        self.take("word", "and")
        self.take("word", "value")
        self.take("op", "=")
        wanted = self.take("str")
        self.take("op", "}")
        return lambda f: (f.get(field) or {}).get(key) == wanted

    def value(self) -> Any:
        kind, got = self.peek()
        self.pos += 1
        if kind == "str":
            return got
        if kind == "word" and got.lower() in ("true", "false"):
            return got.lower() == "true"
        if kind == "num":
            return float(got)
        raise _invalid(f"unexpected {got or 'end of query'!r}")

    def compare(self, field: str, op: str, value: Any) -> Predicate:
        if field in ("name", "fullText", "mimeType") and isinstance(value, str):
            def text(f: Json) -> str:
                return self.text_of(f) if field == "fullText" else str(f[field])
            if op == "contains":
                return lambda f: value.lower() in text(f).lower()
            if op in ("=", "!=") and field != "fullText":
                return lambda f: _COMPARE[op](text(f), value)
        if field in ("trashed", "starred") and isinstance(value, bool) and op in ("=", "!="):
            return lambda f: _COMPARE[op](bool(f.get(field, False)), value)
        if field in ("modifiedTime", "createdTime") and isinstance(value, str) and op in _COMPARE:
            bound = parse_time(value, what="q")
            return lambda f: _COMPARE[op](parse_time(f[field]), bound)
        raise _invalid(f"{field} {op} {value!r}")


def compile_query(query: str, text_of: Callable[[Json], str]) -> Predicate:
    """A predicate on Drive file metadata; ``text_of`` gives the full text ``fullText`` searches."""
    if not query.strip():
        return lambda f: True
    return _Parser(query, text_of).parse()
