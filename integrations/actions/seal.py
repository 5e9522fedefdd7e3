"""An action's arguments, sealed under what must not change beneath them (``core.crypto.action_aad``:
row, user, type, argument hash, decision), and opened the same way.

Rows sealed before the type, hash and decision were bound (row and user only) still open, and say
so: approving one re-seals it, and ``maos keys rotate`` re-seals every one. Such an old row cannot
be made from a new one (that takes the key), so the fallback lets no new row be changed.
"""

from __future__ import annotations

from typing import Any

from core.crypto import DecryptError, Sealed, Sealer, aad_for, action_aad


def seal_args(sealer: Sealer, *, action_id: str, user_id: str, action: str, digest: str, status: str,
              args: dict[str, Any]) -> Sealed:
    return sealer.seal_json(args, action_aad(action_id, user_id, action, digest, status))


def open_args(sealer: Sealer, *, action_id: str, user_id: str, action: str, digest: str, status: str,
              sealed: Sealed) -> tuple[dict[str, Any], bool]:
    """(arguments, sealed the old way); DecryptError when the row was changed under its seal."""
    try:
        return sealer.open_json(sealed, action_aad(action_id, user_id, action, digest, status)), False
    except DecryptError as exc:
        if not sealer.knows(sealed.key_id):
            raise
        try:
            return sealer.open_json(sealed, aad_for("actions", action_id, user_id)), True
        except DecryptError:
            raise DecryptError(f"action {action_id}: its sealed arguments do not open as a {action} with this "
                               "hash and decision (its type, hash or status was changed in the database); "
                               "refused") from exc
