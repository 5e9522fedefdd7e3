"""Unit tier: no Ray. Starting Ray here is a mistake this fixture makes loud."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unit tests must not start Ray; move the test to tests/integration")

    monkeypatch.setattr(ray, "init", refuse)
