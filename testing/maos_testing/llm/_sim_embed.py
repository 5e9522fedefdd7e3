"""Embeddings for the simulated server: hashed bag of words, so texts sharing words are close.

Deterministic and dependency-free; a test tool, not a product embedder.
"""

from __future__ import annotations

import hashlib
import math
import re

DIM = 64
_WORD = re.compile(r"[a-z0-9]+")


def embed(text: str, dim: int = DIM) -> list[float]:
    vec = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vec[h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]
