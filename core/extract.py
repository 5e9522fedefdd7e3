"""Plain text out of a file: txt, md, pdf, docx, csv, html (an upload to memory, a Drive file).

Here in core because both memory (uploads) and integrations (Drive) read files, and neither may
import the other.

Headings come out as markdown '#' lines so chunking can split on them. Every failure is an
IngestError that says what is wrong with the file. A file may unpack to only so much
(:class:`Limits`): a DOCX is a zip, so its parts' sizes and compression ratios are checked before
it is parsed (a zip bomb is refused unopened); a PDF's pages are counted before any is read, and
the text is counted as it comes out.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING

from core.errors import IngestError
from core.html_text import html_to_text

if TYPE_CHECKING:
    from core.settings import Settings

SUPPORTED = (".txt", ".md", ".markdown", ".pdf", ".docx", ".csv", ".html", ".htm")
_FORMATS = {
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".pdf": "pdf",
    ".docx": "docx",
    ".csv": "csv",
    ".html": "html",
    ".htm": "html",
}
_ENCODINGS = ("utf-8", "utf-8-sig", "cp1252")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


@dataclass(frozen=True)
class Extracted:
    title: str
    text: str
    format: str


_MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """How much one file may unpack to; past any limit the file is refused, naming the limit.
    The defaults are the settings' (``Limits.from_settings``)."""

    max_chars: int = 10_000_000  # text taken from one file, any format
    max_pages: int = 2_000  # pages of a PDF
    max_unzipped_mb: float = 100.0  # a DOCX's parts, uncompressed, together
    max_zip_ratio: float = 100.0  # how many times larger than compressed a part over 1 MiB may be
    max_zip_parts: int = 10_000  # parts in a DOCX

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(max_chars=settings.max_document_chars, max_pages=settings.max_document_pages,
                   max_unzipped_mb=settings.max_unzipped_mb)


DEFAULT_LIMITS = Limits()


def extract(filename: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Extracted:
    """The text of one file; raises IngestError(message, filename) when there is none to keep, or
    when it unpacks to more than ``limits`` allow."""
    name = PurePath(filename).name
    suffix = PurePath(name).suffix.lower()
    fmt = _FORMATS.get(suffix)
    if fmt is None:
        shown = suffix or "(none)"
        raise IngestError(
            f"unsupported file type {shown!r}; supported: {', '.join(SUPPORTED)}", name
        )
    if not data.strip():
        raise IngestError("the file is empty", name)
    meta_title = ""
    if fmt == "pdf":
        text, meta_title = _pdf(data, name, limits)
    elif fmt == "docx":
        _check_zip(data, name, limits)
        text = _docx(data, name)
    else:
        raw = _decode(data, name)
        text = _csv(raw, name) if fmt == "csv" else html_to_text(raw) if fmt == "html" else raw
    _check_chars(len(text), name, limits)
    text = _tidy(text)
    if not text:
        hint = " (a scanned PDF has only images; run OCR first)" if fmt == "pdf" else ""
        raise IngestError(f"no text found in this {fmt.upper()} file{hint}", name)
    heading = _HEADING.search(text) if fmt in ("md", "html", "docx") else None
    title = heading.group(1).strip() if heading else meta_title or PurePath(name).stem
    return Extracted(title=title, text=text, format=fmt)


def _check_chars(count: int, name: str, limits: Limits) -> None:
    if count > limits.max_chars:
        raise IngestError(f"the file holds more than {limits.max_chars:,} characters of text; the limit is "
                          f"{limits.max_chars:,} (MAOS_MAX_DOCUMENT_CHARS)", name)


def _check_zip(data: bytes, name: str, limits: Limits) -> None:
    """Refuse a zip that would unpack to too much, from its directory alone (nothing is inflated).
    zipfile stops each part at its declared size, so a part cannot inflate past what is checked here."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise IngestError(f"cannot be read as DOCX ({type(exc).__name__})", name) from exc
    if len(parts) > limits.max_zip_parts:
        raise IngestError(f"the DOCX holds {len(parts):,} parts; the limit is {limits.max_zip_parts:,}", name)
    total = sum(part.file_size for part in parts)
    if total > limits.max_unzipped_mb * _MB:
        raise IngestError(f"the DOCX unpacks to {total / _MB:,.0f} MB; the limit is {limits.max_unzipped_mb:g} MB "
                          "(MAOS_MAX_UNZIPPED_MB)", name)
    for part in parts:
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > _MB and ratio > limits.max_zip_ratio:
            raise IngestError(f"the DOCX part '{part.filename[:80]}' unpacks to {ratio:,.0f} times its size; the "
                              f"limit is {limits.max_zip_ratio:g} times (it looks like a zip bomb)", name)


def _decode(data: bytes, name: str) -> str:
    if b"\x00" in data:
        raise IngestError("not valid UTF-8 text (it looks like a binary file)", name)
    for encoding in _ENCODINGS:
        try:
            return data.decode(encoding).lstrip("\ufeff")
        except UnicodeDecodeError:
            continue
    raise IngestError("not valid UTF-8 text (also tried cp1252)", name)


def _tidy(text: str) -> str:
    """Unix newlines, no trailing spaces, at most one blank line in a row."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _csv(raw: str, name: str) -> str:
    try:
        rows = [row for row in csv.reader(io.StringIO(raw)) if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise IngestError(f"cannot be read as CSV: {exc}", name) from exc
    if not rows:
        return ""
    header = [cell.strip() or f"column {i + 1}" for i, cell in enumerate(rows[0])]
    lines = [", ".join(header)]
    for row in rows[1:]:
        pairs = []
        for i, cell in enumerate(row):
            if cell.strip():
                column = header[i] if i < len(header) else f"column {i + 1}"
                pairs.append(f"{column}: {cell.strip()}")
        lines.append("; ".join(pairs))
    return "\n".join(lines)


def _pdf(data: bytes, name: str, limits: Limits) -> tuple[str, str]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError("the PDF is password-protected", name)
        count = len(reader.pages)
        if count > limits.max_pages:
            raise IngestError(f"the PDF has {count:,} pages; the limit is {limits.max_pages:,} "
                              "(MAOS_MAX_DOCUMENT_PAGES)", name)
        pages: list[str] = []
        chars = 0
        for page in reader.pages:
            pages.append((page.extract_text() or "").strip())
            chars += len(pages[-1])
            _check_chars(chars, name, limits)  # as it comes out, not after the whole file
        title = ""
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title).strip()
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise IngestError(f"cannot be read as PDF ({type(exc).__name__})", name) from exc
    return "\n\n".join(page for page in pages if page), title


def _docx(data: bytes, name: str) -> str:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        for item in document.iter_inner_content():
            if isinstance(item, Paragraph):
                blocks.append(_docx_paragraph(item))
            elif isinstance(item, Table):
                blocks.extend(_docx_row(row.cells) for row in item.rows)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, lxml errors, PackageNotFoundError
        raise IngestError(f"cannot be read as DOCX ({type(exc).__name__})", name) from exc
    return "\n\n".join(block for block in blocks if block)


def _docx_paragraph(paragraph: object) -> str:
    text = str(getattr(paragraph, "text", "")).strip()
    style = getattr(getattr(paragraph, "style", None), "name", "") or ""
    if not text:
        return ""
    match = re.fullmatch(r"Heading ([1-6])", style)
    if match:
        return "#" * int(match.group(1)) + " " + text
    if style == "Title":
        return "# " + text
    return text


def _docx_row(cells: object) -> str:
    seen: list[str] = []
    for cell in cells:  # type: ignore[attr-defined]  # python-docx _Cell list
        text = " ".join(cell.text.split())
        if text and (not seen or seen[-1] != text):  # merged cells repeat their text
            seen.append(text)
    return " | ".join(seen)
