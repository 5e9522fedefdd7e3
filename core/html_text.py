"""HTML to plain text with markdown headings and list items (stdlib html.parser only); what a reader
does not see (scripts, styles, hidden elements) is left out."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = {"script", "style", "nav", "noscript", "template", "svg", "head", "iframe", "button"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
_BLOCK = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "ul", "ol", "table",
    "tr", "blockquote", "pre", "figure", "figcaption", "dl", "dt", "dd", "form", "fieldset",
    "address", "details", "summary", "tbody", "thead",
}  # fmt: skip
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_ZERO = r"0+(?:\.0+)?(?:px|pt|em|rem|%)?\s*(?:!important\s*)?(?:;|$)"
_HIDDEN_STYLE = re.compile(rf"display\s*:\s*none|visibility\s*:\s*hidden|(?:font-size|max-height|opacity)\s*:\s*{_ZERO}",
                           re.I)


def hidden(attrs: list[tuple[str, str | None]]) -> bool:
    """Whether an element is hidden from a person reading the page (the ``hidden`` attribute, or a style
    that hides it). Its text is dropped: a page, a document or a mail cannot hide words to the model in it."""
    style = next((v for k, v in attrs if k == "style" and v), "")
    return any(k == "hidden" for k, _ in attrs) or _HIDDEN_STYLE.search(style) is not None


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.title = ""
        self._line: list[str] = []
        self._prefix = ""
        self._skip_tag = ""  # the skipped element we are inside, counted by its own tag only
        self._skip_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
            return
        if tag in _VOID:
            if tag == "br":
                self._flush()
            return
        if self._skip_depth:
            self._skip_depth += tag == self._skip_tag
            return
        if tag in _SKIP or hidden(attrs):
            self._skip_tag, self._skip_depth = tag, 1
            return
        if tag in _HEADINGS:
            self._flush()
            self._prefix = "#" * _HEADINGS[tag] + " "
        elif tag == "li":
            self._flush()
            self._prefix = "- "
        elif tag in ("td", "th"):
            if self._line:
                self._line.append(" | ")
        elif tag in _BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if tag in _VOID:
            return
        if self._skip_depth:
            self._skip_depth -= tag == self._skip_tag
            return
        if tag in _HEADINGS or tag == "li" or tag in _BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip_depth:
            self._line.append(data)

    def _flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self._line)).strip(" |")
        if text:
            self.blocks.append(self._prefix + text)
        self._line = []
        self._prefix = ""

    def finish(self) -> str:
        self.close()
        self._flush()
        return "\n\n".join(self.blocks)


def html_to_text(raw: str) -> str:
    """Visible text; h1-h6 as '#' lines, li as '- ' lines; script/style/nav dropped.
    A document with a <title> but no heading gets the title as its first heading."""
    parser = _TextParser()
    parser.feed(raw)
    text = parser.finish()
    title = " ".join(parser.title.split())
    if title and not re.search(r"^#{1,6} ", text, re.MULTILINE):
        text = f"# {title}\n\n{text}" if text else ""
    return text
