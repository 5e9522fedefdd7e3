"""Building Google API clients and running one request with retries and model-readable errors.

Everything here is synchronous: the Workspace actor calls it from a worker thread. A built
``Resource`` holds one ``httplib2.Http``, which is not thread-safe: use one per thread.

``execute`` retries rate limits (429; 403 rateLimitExceeded/userRateLimitExceeded) with
exponential backoff, honouring Retry-After. Server errors (5xx) and network failures are retried
only for requests that are safe to repeat: a POST (send mail, create a file) that failed that way
may have happened, so it is raised with reason ``unknown_outcome`` for the caller to look before
retrying. Log lines carry method ids, statuses and counts only: never bodies or addresses.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

import google_auth_httplib2
import httplib2
import structlog
from google.auth.credentials import Credentials
from google.auth.exceptions import RefreshError, TransportError
from googleapiclient.discovery import Resource, build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest

from core.errors import GoogleApiError

ServiceName = Literal["gmail", "calendar", "drive"]
_VERSIONS: dict[ServiceName, tuple[str, str]] = {  # version, service path under the API root
    "gmail": ("v1", ""), "calendar": ("v3", "calendar/v3/"), "drive": ("v3", "drive/v3/"),
}
_LABELS = {"gmail": "Gmail", "calendar": "Calendar", "drive": "Drive"}
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})
_SCOPE_REASONS = frozenset({"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "insufficientScopes"})
_QUOTA_REASONS = frozenset({"dailyLimitExceeded", "quotaExceeded"})
_MAX_RETRY_AFTER_S = 60.0
_MAX_GOOGLE_MESSAGE = 300

_log = structlog.get_logger("maos.google")


@dataclass(frozen=True)
class RetryPolicy:
    """How ``execute`` retries when its caller does not say: attempts after the first, the first
    delay (doubling), and how to wait (tests pass a recorder)."""

    retries: int = 4
    backoff_s: float = 1.0
    sleep: Callable[[float], None] = time.sleep


_DEFAULT_POLICY = RetryPolicy()
_POLICY: ContextVar[RetryPolicy | None] = ContextVar("google_retry_policy", default=None)


@contextmanager
def retry_policy(policy: RetryPolicy) -> Iterator[RetryPolicy]:
    """Use ``policy`` for every ``execute`` in this context (the worker thread running one operation)."""
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def build_service(name: ServiceName, credentials: Credentials, api_endpoint: str | None = None,
                  *, timeout_s: float = 60.0) -> Resource:
    """A client for Gmail v1, Calendar v3 or Drive v3 from the discovery documents shipped with
    the library. ``api_endpoint`` is the APIs' root (a test server); None means Google's own."""
    version, service_path = _VERSIONS[name]
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout_s))
    options = None
    request_builder: Callable[..., HttpRequest] = HttpRequest
    if api_endpoint:
        root = api_endpoint if api_endpoint.endswith("/") else api_endpoint + "/"
        options = {"api_endpoint": urljoin(root, service_path)}
        request_builder = _same_origin_requests(root)
    service: Resource = build(name, version, http=http, client_options=options, static_discovery=True,
                              cache_discovery=False, requestBuilder=request_builder)
    return service


def _same_origin_requests(root: str) -> Callable[..., HttpRequest]:
    """googleapiclient moves upload URLs to a custom endpoint's host but keeps https; keep its scheme too."""
    origin = urlsplit(root)

    def make(http: Any, postproc: Any, uri: str, **kwargs: Any) -> HttpRequest:
        parts = urlsplit(uri)
        if parts.netloc == origin.netloc and parts.scheme != origin.scheme:
            uri = urlunsplit(parts._replace(scheme=origin.scheme))
        return HttpRequest(http, postproc, uri, **kwargs)

    return make


def execute(request: Any, *, what: str, retries: int | None = None, backoff_s: float | None = None,
            sleep: Callable[[float], None] | None = None, idempotent: bool | None = None) -> Any:
    """Run one request; raise GoogleApiError naming ``what`` ("thread 'abc'") on failure.

    ``retries``, ``backoff_s``, ``sleep``: None takes them from the current ``retry_policy``
    (4, 1.0 s, time.sleep unless set). ``idempotent``: whether a server error or network failure
    may be retried; by default every method but POST. Rate limits are always retried (Google did
    not act on the request).
    """
    policy = _POLICY.get() or _DEFAULT_POLICY
    retries = retries if retries is not None else policy.retries
    backoff_s = backoff_s if backoff_s is not None else policy.backoff_s
    sleep = sleep if sleep is not None else policy.sleep
    method_id = str(getattr(request, "methodId", None) or "unknown")
    http_method = str(getattr(request, "method", "GET") or "GET").upper()
    repeatable = idempotent if idempotent is not None else http_method != "POST"
    attempt = 0
    while True:
        try:
            return request.execute(num_retries=0)
        except HttpError as exc:
            status, reason = exc.status_code, error_details(exc)[0]
            rate_limited = status == 429 or (status == 403 and reason in _RATE_LIMIT_REASONS)
            transient = rate_limited or (status >= 500 and repeatable)
            if not transient or attempt >= retries:
                error = error_from_http(exc, what=what, method_id=method_id, http_method=http_method,
                                        retries=attempt, repeatable=repeatable)
                _log.warning("google_error", method=method_id, status=status, reason=reason, attempts=attempt + 1)
                raise error from None
            delay = _retry_after(exc.resp)
        except RefreshError as exc:
            if not getattr(exc, "retryable", False) or attempt >= retries:
                _log.warning("google_refresh_failed", method=method_id, attempts=attempt + 1)
                raise GoogleApiError(
                    "Google refused to refresh the access token (401): ask the user to reconnect Google "
                    "in Integrations", 401, "refresh_failed", False) from None
            delay = None
        except (OSError, httplib2.HttpLib2Error, TransportError) as exc:
            if not repeatable or attempt >= retries:
                _log.warning("google_unreachable", method=method_id, error_type=type(exc).__name__,
                             attempts=attempt + 1)
                raise _unreachable(exc, what, method_id, repeatable, attempt) from None
            delay = None
        if delay is None:
            delay = backoff_s * 2 ** attempt
            delay += random.uniform(0, delay / 4)  # spread many workers that hit the limit together
        attempt += 1
        _log.info("google_retry", method=method_id, attempt=attempt, delay_s=round(delay, 3))
        sleep(delay)


def error_details(exc: HttpError) -> tuple[str, str]:
    """(reason code, Google's message) from an error response; '' where it has none."""
    try:
        data = json.loads(exc.content.decode("utf-8", "replace"))
    except ValueError:
        return "", ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):  # OAuth style: {"error": "invalid_grant", "error_description": ...}
        return error, str(data.get("error_description", ""))
    if not isinstance(error, dict):
        return "", ""
    reason = ""
    for key in ("errors", "details"):
        for item in error.get(key) or []:
            if isinstance(item, dict) and item.get("reason"):
                reason = str(item["reason"])
                break
        if reason:
            break
    return reason or str(error.get("status", "")), str(error.get("message", ""))


def error_from_http(exc: HttpError, *, what: str, method_id: str = "unknown", http_method: str = "GET",
                    retries: int = 0, repeatable: bool = True) -> GoogleApiError:
    """The GoogleApiError for one HttpError, with a message the model can act on. ``repeatable``
    False: a server error leaves it unknown whether the request took effect."""
    status = exc.status_code
    reason, google_message = error_details(exc)
    service = _LABELS.get(method_id.split(".")[0], "Google")
    detail = " ".join(google_message.split())[:_MAX_GOOGLE_MESSAGE]
    code = f"{status} {reason}" if reason else str(status)
    retryable = False
    if status == 429 or (status == 403 and reason in _RATE_LIMIT_REASONS):
        message, retryable = f"Google rate limit ({status}) persisted after {retries} retries", True
    elif status == 401:
        message = f"{service}: Google rejected the credentials (401): ask the user to reconnect Google in Integrations"
    elif status == 403 and reason in _SCOPE_REASONS:
        doing = "reading" if http_method == "GET" else "writing to"
        message = (f"{service}: permission denied ({code}): the Google grant does not include {doing} "
                   f"{service}; ask the user to turn it on in Integrations")
    elif status == 403 and reason == "accessNotConfigured":
        message = (f"{service}: the {service} API is not enabled in the Google Cloud project ({code}); "
                   "ask the user to enable it there")
    elif status == 403 and reason in _QUOTA_REASONS:
        message, retryable = f"{service}: the Google quota is used up ({code}); try again later", True
    elif status == 403:
        message = f"{service}: permission denied ({code}) for {what}" + (f": {detail}" if detail else "")
    elif status == 404:
        message = f"{service}: {what} was not found (404)"
    elif status == 409:
        message = f"{service}: {what} already exists (409)"
    elif status == 410:
        message = f"{service}: {what} is gone (410)"
    elif status >= 500:
        message, retryable = f"{service}: Google server error ({status}) for {what} persisted after {retries} retries", True
        if not repeatable:
            message = (f"{service}: Google server error ({status}) for {what}: it may or may not have happened; "
                       "look before retrying")
            reason = "unknown_outcome"
    else:
        message = f"{service}: {what} failed ({code})" + (f": {detail}" if detail else "")
    return GoogleApiError(message, status, reason, retryable)


def _unreachable(exc: BaseException, what: str, method_id: str, repeatable: bool, retries: int) -> GoogleApiError:
    service = _LABELS.get(method_id.split(".")[0], "Google")
    if repeatable:
        return GoogleApiError(f"{service}: Google could not be reached for {what} ({type(exc).__name__}) "
                              f"after {retries} retries", 0, "unreachable", True)
    return GoogleApiError(f"{service}: the connection to Google failed during {what} ({type(exc).__name__}): "
                          "it may or may not have happened; look before retrying", 0, "unknown_outcome", True)


def _retry_after(resp: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped; None without one."""
    value = resp.get("retry-after") if hasattr(resp, "get") else None
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(str(value)) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


def not_found(exc: GoogleApiError) -> bool:
    """404 or 410: the thing is not there (anymore)."""
    return exc.status in (404, 410)
