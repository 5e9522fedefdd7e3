"""Split extracted text into chunks for embedding: by markdown heading, then by size.

Within a section, paragraphs are packed up to max_chars; a paragraph that is too long is split
into lines (CSV-like text) or sentences, and a sentence that is still too long at spaces. Each
chunk after the first in a section starts with ~overlap chars of the one before (whole units
when they fit). A chunk's text is always a slice of the document, so `start` is exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?;])[\"')\]]*\s+")

Span = tuple[int, int]


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    heading: str
    start: int

    def embed_text(self, title: str) -> str:
        """What gets embedded: "title — heading" on the first line, then the chunk."""
        label = " — ".join(part for part in (title.strip(), self.heading) if part)
        return f"{label}\n{self.text}" if label else self.text


def chunk_text(text: str, max_chars: int = 600, overlap: int = 80) -> list[Chunk]:
    if max_chars < 1 or overlap < 0:
        raise ValueError("max_chars must be >= 1 and overlap >= 0")
    overlap = min(overlap, max_chars // 2)
    pieces: list[tuple[str, Span]] = []
    for heading, section in _sections(text):
        for span in _pack(text, _units(text, section, max_chars), max_chars, overlap):
            pieces.append((heading, span))
    if not pieces and text.strip():  # only headings: keep them rather than lose the document
        pieces = [("", span) for span in _pack(text, _units(text, (0, len(text)), max_chars),
                                               max_chars, overlap)]  # fmt: skip
    chunks: list[Chunk] = []
    for heading, (start, end) in pieces:
        chunks.append(Chunk(index=len(chunks), text=text[start:end], heading=heading, start=start))
    return chunks


def _sections(text: str) -> list[tuple[str, Span]]:
    """(heading path, body span) per section; the text before the first heading has path ""."""
    sections: list[tuple[str, Span]] = []
    path: list[tuple[int, str]] = []
    body_start = 0
    for match in _HEADING.finditer(text):
        sections.append((" > ".join(title for _, title in path), (body_start, match.start())))
        level = len(match.group(1))
        path = [(lvl, title) for lvl, title in path if lvl < level]
        path.append((level, match.group(2).strip()))
        body_start = match.end()
    sections.append((" > ".join(title for _, title in path), (body_start, len(text))))
    return sections


def _units(text: str, span: Span, max_chars: int) -> list[Span]:
    """Trimmed, non-empty spans no longer than max_chars, in order, covering the span's text."""
    out: list[Span] = []
    for para in _split(text, span, _PARAGRAPH_BREAK):
        if para[1] - para[0] <= max_chars:
            out.append(para)
            continue
        lines = _split(text, para, re.compile(r"\n"))
        for line in lines if len(lines) > 1 else [para]:
            if line[1] - line[0] <= max_chars:
                out.append(line)
                continue
            for sentence in _split(text, line, _SENTENCE_END):
                out.extend(_hard_split(text, sentence, max_chars))
    return out


def _split(text: str, span: Span, separator: re.Pattern[str]) -> list[Span]:
    start, end = span
    pieces: list[Span] = []
    cursor = start
    for match in separator.finditer(text, start, end):
        pieces.append((cursor, match.start()))
        cursor = match.end()
    pieces.append((cursor, end))
    return [trimmed for piece in pieces if (trimmed := _trim(text, piece))]


def _trim(text: str, span: Span) -> Span | None:
    start, end = span
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _hard_split(text: str, span: Span, max_chars: int) -> list[Span]:
    """Cut an over-long sentence at the last space before max_chars (or at max_chars)."""
    out: list[Span] = []
    start, end = span
    while end - start > max_chars:
        cut = text.rfind(" ", start + 1, start + max_chars + 1)
        cut = cut if cut > start else start + max_chars
        if piece := _trim(text, (start, cut)):
            out.append(piece)
        start = cut
    if piece := _trim(text, (start, end)):
        out.append(piece)
    return out


def _pack(text: str, units: list[Span], max_chars: int, overlap: int) -> list[Span]:
    chunks: list[Span] = []
    current: list[Span] = []
    for unit in units:
        if current and unit[1] - current[0][0] > max_chars:
            chunks.append((current[0][0], current[-1][1]))
            carry = _carry(text, current, overlap)
            current = [carry] if carry and unit[1] - carry[0] <= max_chars else []
        current.append(unit)
    if current:
        chunks.append((current[0][0], current[-1][1]))
    return chunks


def _carry(text: str, units: list[Span], overlap: int) -> Span | None:
    """The tail of a finished chunk that the next one repeats: whole trailing units of at most
    `overlap` chars, else the last `overlap` chars starting at a word."""
    end = units[-1][1]
    whole = [u for u in units[1:] if end - u[0] <= overlap]
    if whole:
        return (whole[0][0], end)
    if overlap == 0:
        return None
    space = text.find(" ", max(end - overlap, units[0][0] + 1), end)
    return _trim(text, (space, end)) if space != -1 else None
