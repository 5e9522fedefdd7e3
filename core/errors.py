"""One small tree of program errors. Every error pickles: constructors pass all args up."""

from __future__ import annotations

import pickle


class MaosError(Exception):
    """Base of every error the program raises on purpose."""


class ConfigError(MaosError):
    """Settings that cannot work (bad value, missing file)."""


class PlanError(MaosError):
    """The model's plan failed validation after every repair attempt."""

    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message, attempts)
        self.message = message
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message


class LLMError(MaosError):
    """A call to the LLM server failed."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message, transient)
        self.message = message
        self.transient = transient

    def __str__(self) -> str:
        return self.message


class LLMUnavailable(LLMError):
    """The LLM server cannot be reached (connection refused, 503 past retries)."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message, transient)


class BudgetExceeded(MaosError):
    """A run or step went past one of its limits."""


class NotFound(MaosError):
    """An id that names nothing."""


class QueueFull(MaosError):
    """The queue is past its bound; try again later."""

    def __init__(self, message: str, retry_after_s: float = 5.0) -> None:
        super().__init__(message, retry_after_s)
        self.message = message
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return self.message


class ToolError(MaosError):
    """A tool failed in a way the model may fix; goes back to it as an observation."""


class ActorGone(MaosError):
    """A runtime actor died or could not be reached."""

    def __init__(self, message: str, name: str = "") -> None:
        super().__init__(message, name)
        self.message = message
        self.name = name

    def __str__(self) -> str:
        return self.message


class Conflict(MaosError):
    """A valid request for something not in a state that allows it (retrying a task that is not dead)."""


class Reauthenticate(MaosError):
    """A change that widens what the app may do was asked without the login token given again."""


class IngestError(MaosError):
    """A file that cannot be stored in memory (unreadable, empty, unsupported); nothing of it is kept."""

    def __init__(self, message: str, filename: str = "") -> None:
        super().__init__(message, filename)
        self.message = message
        self.filename = filename

    def __str__(self) -> str:
        return f"{self.filename}: {self.message}" if self.filename else self.message


class IntegrationUnavailable(MaosError):
    """An integration cannot be used until a person acts (reconnect Google): the step waits, it does not fail."""

    def __init__(self, message: str, provider: str = "google") -> None:
        super().__init__(message, provider)
        self.message = message
        self.provider = provider

    def __str__(self) -> str:
        return self.message


class GoogleApiError(MaosError):
    """Google answered with an error. ``retryable``: rate limits and server errors (after backoff)."""

    def __init__(self, message: str, status: int = 0, reason: str = "", retryable: bool = False) -> None:
        super().__init__(message, status, reason, retryable)
        self.message = message
        self.status = status
        self.reason = reason
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class ApprovalRefused(MaosError):
    """An approval that cannot be used: unknown, someone else's, already used, expired, or for other arguments."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message, reason)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return self.message


def portable(exc: BaseException) -> Exception:
    """``exc``, or an error saying the same where ``exc`` cannot be sent to another process (an answer
    that carries errors as values, one per request of a batch)."""
    try:
        pickle.dumps(exc)
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc if isinstance(exc, Exception) else RuntimeError(f"{type(exc).__name__}: {exc}")
