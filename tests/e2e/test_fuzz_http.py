"""Fuzz (issue 23): schemathesis over the OpenAPI document, signed in as a member with an API token
of their own: no 5xx, every error JSON with a reason (``detail``), every documented answer matching
its schema. Bounded: a few examples per operation, derandomized. The login routes are left out (a
burst of wrong passwords would lock this address out of the app for the tests that follow; the
brute-force limits have tests of their own)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.result import Err, Ok

from tests.e2e.conftest import Served
from tests.e2e.test_isolation_http import member

MAX_EXAMPLES = 3  # per operation: about 150 requests in all


def error_with_reason(ctx: Any, response: Any, case: Any) -> bool | None:
    """An answer of 400 or more is JSON with a non-empty ``detail``."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{case.method} {case.path}: {response.status_code} is not JSON") from None
    if not (isinstance(body, dict) and body.get("detail")):
        raise AssertionError(f"{case.method} {case.path}: {response.status_code} without a reason: {str(body)[:200]}")
    return None


@pytest.fixture(scope="module")
def member_headers(served: Served) -> dict[str, str]:
    with member(served, f"fuzz{uuid.uuid4().hex[:6]}") as client:
        return {"Authorization": str(client.headers["Authorization"])}


def test_no_5xx_and_every_error_has_a_reason(served: Served, member_headers: dict[str, str]) -> None:
    """Each operation in turn (schemathesis' pytest plugin does not run on this pytest): its cases drawn by
    Hypothesis from the document, sent to the app, checked; every failure is listed at the end."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    document = httpx.get(f"{served.base_url}/openapi.json", headers=member_headers, timeout=30)
    assert document.status_code == 200
    schema = schemathesis.openapi.from_dict(document.json()).exclude(path_regex=r"^/api/auth/")
    schema.config.update(base_url=served.base_url)
    results = list(schema.get_all_operations())
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) == len(results), [r.err() for r in results if isinstance(r, Err)]
    failures: list[str] = []
    sent = 0
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def check(case: Any) -> None:
            nonlocal sent
            sent += 1
            case.call_and_validate(headers=member_headers, timeout=60,
                                   checks=[not_a_server_error, response_schema_conformance, error_with_reason])

        try:
            check()
        except Exception as exc:  # every operation is tried; the failures are reported together
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:800]}")
    assert len(operations) >= 40 and sent >= len(operations)
    assert not failures, "\n\n".join(failures)
