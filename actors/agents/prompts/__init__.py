"""Prompt templates are package-data files, rendered strictly: a missing or unknown variable is an error."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from string import Template

from core.errors import MaosError


class PromptError(MaosError):
    """A prompt template that is missing, malformed, or rendered with the wrong variables."""


def template_names() -> list[str]:
    root = resources.files(__package__)
    return sorted(p.name[:-3] for p in root.iterdir() if p.name.endswith(".md"))


@lru_cache(maxsize=32)
def _template(name: str) -> Template:
    path = resources.files(__package__).joinpath(f"{name}.md")
    if not path.is_file():
        raise PromptError(f"no prompt template '{name}'; known: {', '.join(template_names())}")
    template = Template(path.read_text(encoding="utf-8"))
    if not template.is_valid():
        raise PromptError(f"prompt template '{name}' has a malformed placeholder (write a literal $ as $$)")
    return template


def variables(template_name: str) -> list[str]:
    """The variables a template needs, in order of first use."""
    return list(dict.fromkeys(_template(template_name).get_identifiers()))


def render(template_name: str, **values: object) -> str:
    """Fill every ``${name}`` of the template; missing or unexpected variables raise PromptError."""
    needed = variables(template_name)
    missing = [v for v in needed if v not in values]
    if missing:
        raise PromptError(f"prompt '{template_name}' is missing variable(s): {', '.join(missing)}")
    unknown = sorted(set(values) - set(needed))
    if unknown:
        raise PromptError(f"prompt '{template_name}' has no variable(s): {', '.join(unknown)}")
    return _template(template_name).substitute({k: str(v) for k, v in values.items()})


_DATA_TAG = re.compile(r"<(/?)(\s*)data\b", re.IGNORECASE)


def render_data(source: str, text: str) -> str:
    """Untrusted text as a block the model is told to read as data, marked with where it came from.

    It goes in a user message, never in the system prompt. A ``<data>`` or ``</data>`` inside the text
    is defused, so the text cannot close its block and write outside it.
    """
    return render("data", source=source, text=_DATA_TAG.sub(r"‹\1\2data", text.strip()))
