"""The Workspace's helpers (``integrations.actions``) reach the Store through ``ActionStore``, a
Protocol of the Store operations they use, so they import nothing from the actors above them. It
must stay the Store's own API, narrowed: same names, parameters and return types as ``StoreApi``."""

from __future__ import annotations

import inspect

from actors.runtime.apis import StoreApi
from actors.store import Store
from integrations.actions.store import ActionStore


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(cls).items()
            if inspect.isfunction(fn) and not name.startswith("_")}


def test_every_action_store_operation_is_a_store_operation_with_the_same_signature() -> None:
    narrowed, api = _methods(ActionStore), _methods(StoreApi)
    assert len(narrowed) >= 25
    missing = sorted(set(narrowed) - set(api))
    assert not missing, f"ActionStore names operations the Store does not offer: {missing}"
    differ = {name: (str(sig), str(api[name])) for name, sig in narrowed.items() if sig != api[name]}
    assert not differ, f"ActionStore and StoreApi disagree: {differ}"


def test_the_store_class_offers_every_action_store_operation_as_a_coroutine() -> None:
    for name in _methods(ActionStore):
        assert inspect.iscoroutinefunction(getattr(Store, name)), name
