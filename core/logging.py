"""structlog set-up: JSON lines when not on a terminal, key-values always.

Tracebacks never show local variables (rich's default does): a frame's locals may hold a token,
a key or a message body.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog


def _traceback_formatter() -> structlog.typing.ExceptionRenderer:
    if getattr(structlog.dev, "rich", None) is not None:
        return structlog.dev.RichTracebackFormatter(show_locals=False)
    return structlog.dev.plain_traceback


def configure(level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderers: list[structlog.types.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()] if use_json
        else [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_traceback_formatter())]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *renderers,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
