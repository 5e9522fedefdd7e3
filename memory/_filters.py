"""The engine-neutral filter the vector store passes to its engines: keyword/bool conditions, ANDed."""

from __future__ import annotations

from collections.abc import Sequence

MatchValue = str | bool | Sequence[str]  # a sequence matches any of its values
Conds = list[tuple[str, MatchValue]]
