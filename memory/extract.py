"""Plain text out of an uploaded file: txt, md, pdf, docx, csv, html.

Headings come out as markdown '#' lines so chunking can split on them. Every failure is an
IngestError that says what is wrong with the file.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import PurePath

from core.errors import IngestError
from memory._html import html_to_text

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


def extract(filename: str, data: bytes) -> Extracted:
    """The text of one file; raises IngestError(message, filename) when there is none to keep."""
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
        text, meta_title = _pdf(data, name)
    elif fmt == "docx":
        text = _docx(data, name)
    else:
        raw = _decode(data, name)
        text = _csv(raw, name) if fmt == "csv" else html_to_text(raw) if fmt == "html" else raw
    text = _tidy(text)
    if not text:
        hint = " (a scanned PDF has only images; run OCR first)" if fmt == "pdf" else ""
        raise IngestError(f"no text found in this {fmt.upper()} file{hint}", name)
    heading = _HEADING.search(text) if fmt in ("md", "html", "docx") else None
    title = heading.group(1).strip() if heading else meta_title or PurePath(name).stem
    return Extracted(title=title, text=text, format=fmt)


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


def _pdf(data: bytes, name: str) -> tuple[str, str]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError("the PDF is password-protected", name)
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
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
