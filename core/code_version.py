"""The code version every machine of a cluster must share: the package's version and a digest of
its installed source files. Two machines whose code differs by one file (a prompt included) run
different versions, whatever the package version says; ``maos cluster join`` refuses to mix them."""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "master-agent-os"
# The product's top-level packages (pyproject's packages.find), all installed side by side.
PACKAGES = ("core", "actors", "serve_app", "memory", "integrations", "ui")
# What a Ray worker runs or reads: the code and its package data (prompts, SQL, JSON).
SUFFIXES = frozenset({".py", ".md", ".txt", ".j2", ".sql", ".json"})
DIGEST_CHARS = 12


def source_digest(root: Path, packages: tuple[str, ...] = PACKAGES) -> str:
    """SHA-256 over every source file of ``packages`` under ``root``: its path relative to ``root``
    and its bytes, in path order (caches and compiled files are left out)."""
    digest = hashlib.sha256()
    for package in packages:
        files = sorted(p for p in (root / package).rglob("*")
                       if p.suffix in SUFFIXES and p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def package_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


@functools.cache
def code_version() -> str:
    """``<package version>+<digest>`` of the code this process imports, e.g. ``0.1.0+3f9c2a71be04``."""
    root = Path(__file__).resolve().parents[1]
    return f"{package_version()}+{source_digest(root)[:DIGEST_CHARS]}"
