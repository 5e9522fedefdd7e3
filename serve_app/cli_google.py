"""``maos google …``, ``maos approvals …`` and ``maos keys …``: through the running app's Workspace
actor, or (app stopped) a Workspace opened here on the data files. ``maos google`` goes through the
Google provider (``integrations.google.provider``), as the integrations routes do."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

from actors.runtime.apis import WorkspaceApi
from core.action_schemas import READ_FEATURES, IntegrationView
from core.crypto import Sealer, new_key_text
from core.errors import ApprovalRefused, MaosError
from core.settings import Settings


def add_commands(sub: Any) -> dict[str, Callable[[Settings, argparse.Namespace], int]]:
    g = sub.add_parser("google", help="connect Google (Gmail, Calendar, Drive)").add_subparsers(
        dest="google_command", required=True)
    c = g.add_parser("connect", help="connect in the browser (a loopback sign-in; for CLI-only set-ups)")
    c.add_argument("--features", default=",".join(READ_FEATURES),
                   help="comma-separated: gmail_read, gmail_write, calendar_read, calendar_write, drive_read, "
                        "drive_write (default: read-only)")
    c.add_argument("--no-browser", action="store_true", help="print the address instead of opening a browser")
    g.add_parser("status", help="connected or not, granted features, waiting tasks")
    g.add_parser("disconnect", help="revoke the grant and forget the tokens")
    sub.add_parser("integrations", help="every registered integration: connected or not, granted features")
    a = sub.add_parser("approvals", help="actions waiting for approval").add_subparsers(
        dest="approvals_command", required=True)
    a.add_parser("list", help="pending actions")
    ap = a.add_parser("approve", help="approve one action as listed")
    ap.add_argument("action_id")
    rj = a.add_parser("reject", help="reject one action")
    rj.add_argument("action_id")
    rj.add_argument("--reason", default="")
    dg = a.add_parser("delegates", help="who may also decide your pending actions, and for whom you may (shown "
                                        "with no option)")
    change = dg.add_mutually_exclusive_group()
    change.add_argument("--set", metavar="NAMES", help="login names, separated by commas: the whole list")
    change.add_argument("--none", action="store_true", help="name nobody")
    k = sub.add_parser("keys", help="encryption keys").add_subparsers(dest="keys_command", required=True)
    k.add_parser("new", help="print a new random key (for ENCRYPTION_KEY)")
    k.add_parser("rotate", help="re-encrypt everything under ENCRYPTION_KEY (old keys in ENCRYPTION_OLD_KEYS)")
    return {"google": _google, "integrations": _integrations, "approvals": _approvals, "keys": _keys}


def _with_workspace(settings: Settings, work: Callable[[WorkspaceApi], Coroutine[Any, Any, Any]]) -> Any:
    from actors.runtime.handles import LocalHandle
    from actors.runtime.typed import typed
    from serve_app.cli_memory import app_or_file

    app, store = app_or_file(settings)
    if app is not None:
        return asyncio.run(work(app.workspace))
    from actors.workspace import Workspace

    async def local() -> Any:
        try:
            result = await work(typed(LocalHandle(Workspace(settings, LocalHandle(store, "store"), sweep=False), "workspace"),
                                      WorkspaceApi))
            await store.flush()
            return result
        finally:
            store.close()

    return asyncio.run(local())


def _google(settings: Settings, args: argparse.Namespace) -> int:
    user = settings.user_id
    if args.google_command == "connect":
        from integrations.google import oauth, provider

        missing = oauth.configured(settings)
        if missing is not None:
            print(f"maos: Google cannot be connected yet: {missing}")
            return 2
        features = [f.strip() for f in args.features.split(",") if f.strip()]
        try:
            tokens = provider.loopback_tokens(settings, features, open_browser=not args.no_browser)
        except MaosError as exc:
            print(f"maos: {exc}")
            return 2
        view = _with_workspace(settings, lambda w: w.connect_tokens(user_id=user, tokens=tokens))
    elif args.google_command == "disconnect":
        view = _with_workspace(settings, lambda w: w.disconnect(user_id=user, provider="google"))
    else:
        view = _with_workspace(settings, lambda w: w.status(user_id=user, provider="google"))
    print_integration(view, "Google")
    return 0


def _integrations(settings: Settings, args: argparse.Namespace) -> int:
    from integrations import registry

    labels = {p.name: p.label for p in registry.registered()}
    for view in _with_workspace(settings, lambda w: w.integrations(settings.user_id)):
        print_integration(view, labels.get(view.provider, view.provider))
    return 0


def print_integration(view: IntegrationView, name: str) -> None:
    granted = ", ".join(f.name for f in view.features if f.enabled) or "nothing"
    print(f"{name}: {view.status}" + (f" ({view.account})" if view.account else "")
          + (f": {view.reason}" if view.reason else ""))
    print(f"  granted: {granted}; tasks waiting for it: {view.waiting_tasks}")


def _approvals(settings: Settings, args: argparse.Namespace) -> int:
    user = settings.user_id
    try:
        if args.approvals_command == "list":
            views = _with_workspace(settings, lambda w: w.list_actions(user_id=user, status="pending", run_id=None, limit=200))
            for v in views:
                print(f"{v.id}  {v.summary}")
            print(f"{len(views)} pending")
            return 0
        if args.approvals_command == "delegates":
            return _delegates(settings, args)
        if args.approvals_command == "approve":
            async def approve(w: Any) -> Any:
                shown = await w.get_action(user_id=user, action_id=args.action_id)
                print(shown.summary)
                print(json.dumps(shown.arguments, indent=2, ensure_ascii=False))
                return await w.approve(user_id=user, action_id=args.action_id, digest=shown.args_hash, approver=user)
            view = _with_workspace(settings, approve)
        else:
            view = _with_workspace(settings, lambda w: w.reject(user_id=user, action_id=args.action_id, reason=args.reason, who=user))
    except (ApprovalRefused, MaosError) as exc:
        print(f"maos: {exc}")
        return 1
    print(f"{view.id}: {view.status}")
    return 0


def _delegates(settings: Settings, args: argparse.Namespace) -> int:
    """``maos approvals delegates [--set NAMES | --none]``, for this data directory's user (as HTTP's
    ``/api/approvals/delegates`` is for the caller): a name that is no enabled user changes nothing."""
    user = settings.user_id
    if args.set is None and not args.none:
        view = _with_workspace(settings, lambda w: w.delegates(user_id=user))
    else:
        names = [] if args.none else [n.strip() for n in args.set.split(",") if n.strip()]
        view = _with_workspace(settings, lambda w: w.set_delegates(user_id=user, delegates=names))
    print(f"your approval delegates: {', '.join(p.name for p in view.delegates) or 'nobody'}")
    print(f"you may decide for: {', '.join(p.name for p in view.delegate_for) or 'nobody'}")
    return 0


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    if args.keys_command == "new":
        print(new_key_text())
        return 0
    if settings.encryption_key is None:
        print("maos: set ENCRYPTION_KEY to the new key, and ENCRYPTION_OLD_KEYS to the old one(s)")
        return 2
    sealer = Sealer.from_settings(settings)
    assert sealer is not None
    try:
        counts = _with_workspace(settings, lambda w: w.rotate_keys(sealer.key_id))
    except MaosError as exc:
        print(f"maos: {exc}")
        return 1
    print("re-encrypted: " + ", ".join(f"{n} {table}" for table, n in counts.items())
          + "; the database file is under the new key from its next opening")
    print("vector payloads still read with the old key: `maos memory rebuild` re-encrypts them")
    return 0
