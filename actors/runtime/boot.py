"""What runs first in an actor's process: logging, and the settings saved from the UI.

Each actor module defines its class's actor form with :func:`actor_class` as a module attribute,
so Ray pickles it by reference: an actor's process then imports its own module only. (A class
made on the fly is pickled by value, and every process given a handle to it imported its module
too: a pool imported the gateway, Store, Memory and Workspace modules, about a second of each
process's start on a small machine.)
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import ray
import structlog

from core.logging import configure
from core.settings import Settings, overlay

_log = structlog.get_logger("maos.runtime")
T = TypeVar("T")


@dataclass(frozen=True)
class Boot:
    """An actor's first constructor argument: how it logs, and whether it takes the saved settings."""

    level: str
    fmt: Literal["auto", "json", "console"]
    namespace: str
    saved_settings: bool = True

    @classmethod
    def of(cls, settings: Settings, saved_settings: bool = True) -> Boot:
        return cls(settings.log_level, settings.log_format, settings.namespace, saved_settings)


def actor_class(cls: type[T]) -> type[T]:
    """``cls`` taking a :class:`Boot` first: it sets up structlog in the actor's process before the
    class runs and, when Ray restarts the actor, hands the class the settings saved from the UI since
    the app started. Assign the result to ``Actor<ClassName>`` in ``cls``'s module.

    A class with a static ``prepare_process(*args)`` has it run in a thread meanwhile (the gateway
    imports litellm there, 2-3 s, while the Store is still opening).

    Secrets never arrive as arguments (``Settings.without_secrets``): the wrapper reads them from
    the cluster's key-value store (:func:`read_secrets`) and puts them back into every Settings
    given, in this process only.

    A keyword ``_after`` is dropped: the runtime passes there what must be ready before Ray starts
    the actor (Ray starts no process for it until its arguments are), and the class never sees it.
    """

    def __init__(self: Any, boot: Boot, *args: Any, _after: Any = None, **kwargs: Any) -> None:
        configure(boot.level, "json" if boot.fmt == "auto" else boot.fmt)
        prepare = getattr(cls, "prepare_process", None)
        if prepare is not None:
            threading.Thread(target=prepare, args=args, name="prepare-process", daemon=True).start()
        # At the app's start the settings given already include the saved ones (read from the Store first);
        # an actor Ray restarts gets those start-up arguments again, so it asks the Store.
        if boot.saved_settings and ray.get_runtime_context().was_current_actor_reconstructed:
            args, kwargs = _saved_settings_applied(args, kwargs, boot.namespace)
        if any(isinstance(a, Settings) for a in (*args, *kwargs.values())):
            found = read_secrets(boot.namespace)
            args = tuple(a.with_secrets(found) if isinstance(a, Settings) else a for a in args)
            kwargs = {k: v.with_secrets(found) if isinstance(v, Settings) else v for k, v in kwargs.items()}
        cls.__init__(self, *args, **kwargs)  # type: ignore[misc]  # the wrapped class's own constructor

    return cast(type[T], type(cls.__name__, (cls,), {
        "__init__": __init__, "__module__": cls.__module__, "__qualname__": f"Actor{cls.__name__}"}))


def _saved_settings_applied(args: tuple[Any, ...], kwargs: dict[str, Any],
                            namespace: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args`` and ``kwargs`` with any Settings overlaid by what the Store has saved; unchanged if it
    cannot answer."""
    if not any(isinstance(a, Settings) for a in (*args, *kwargs.values())):
        return args, kwargs
    try:
        saved = cast(dict[str, object], ray.get(
            ray.get_actor("store", namespace=namespace).settings_overrides.remote(), timeout=30))
    except Exception as exc:  # no Store (yet): the start-up settings stand
        _log.warning("actor.saved_settings_unavailable", error=str(exc))
        return args, kwargs
    return (tuple(overlay(a, saved) if isinstance(a, Settings) else a for a in args),
            {k: overlay(v, saved) if isinstance(v, Settings) else v for k, v in kwargs.items()})


# --- secrets: in the cluster's key-value store (behind Ray's token auth), never in arguments -----

def _secrets_namespace(namespace: str) -> str:
    return f"maos-secrets-{namespace}"


def publish_secrets(settings: Settings) -> None:
    """Put the app's secrets where its actors read them as they start (Ray's GCS key-value store,
    reached only with the cluster's token). Not in actor arguments or runtime environments, which
    Ray records with the actor, shows in its state API and prints in errors."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_put(b"secrets", json.dumps(settings.secrets()).encode(), overwrite=True,
                                 namespace=_secrets_namespace(settings.namespace))


def read_secrets(namespace: str) -> dict[str, str]:
    """The secrets published for the app in ``namespace``; none if nothing was published."""
    from ray.experimental import internal_kv

    raw = internal_kv._internal_kv_get(b"secrets", namespace=_secrets_namespace(namespace))
    return cast(dict[str, str], json.loads(raw)) if raw else {}


def forget_secrets(namespace: str) -> None:
    from ray.experimental import internal_kv

    internal_kv._internal_kv_del(b"secrets", namespace=_secrets_namespace(namespace))
