"""Layers point one way: core ← integrations, memory ← agents ← actors ← serve_app, ui.

Every import in every product module is read from its syntax tree, imports inside functions and
under ``TYPE_CHECKING`` included (a lazy import is still a dependency), and checked against the
direction. integrations and memory are peers (neither imports the other); serve_app mounts the UI,
and the UI reaches the runtime only over HTTP (it imports nothing from serve_app or actors).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "integrations", "memory", "actors", "serve_app", "ui")

RANK = {"core": 0, "integrations": 1, "memory": 1, "agents": 2, "actors": 3, "serve_app": 4, "ui": 4}
EXTRA_ALLOWED = {("serve_app", "ui")}  # the app mounts the UI
EXTRA_FORBIDDEN = {("ui", "actors"), ("ui", "agents")}  # the UI talks to the runtime over HTTP only


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    imported: str
    source_layer: str
    target_layer: str

    def __str__(self) -> str:
        return (f"{self.file}:{self.line}: imports {self.imported} "
                f"({self.source_layer} may not import {self.target_layer})")


def layer_of(module: str) -> str | None:
    """The layer a module of ours belongs to; None for the standard library, third parties and tests."""
    parts = module.split(".")
    if parts[0] == "actors" and len(parts) > 1 and parts[1] == "agents":
        return "agents"
    return parts[0] if parts[0] in PACKAGES else None


def allowed(source: str, target: str) -> bool:
    if source == target or (source, target) in EXTRA_ALLOWED:
        return True
    if (source, target) in EXTRA_FORBIDDEN:
        return False
    return RANK[target] < RANK[source]


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imported_modules(tree: ast.AST, module: str, is_package: bool) -> set[tuple[int, str]]:
    """(line, absolute module name) of every import in the tree. ``from x import y`` names x.y when
    that is a module of ours (``from actors import agents``), else x."""
    found: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            found.update((node.lineno, f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base)
                         for a in node.names)
    return found


def check_source(source: str, module: str, file: str = "", is_package: bool = False) -> list[Violation]:
    """The imports in ``source`` (the text of ``module``) that point against the layers."""
    own = layer_of(module)
    if own is None:
        return []
    out = []
    for line, imported in _imported_modules(ast.parse(source, filename=file or module), module, is_package):
        target = layer_of(imported)
        if target is not None and not allowed(own, target):
            out.append(Violation(file or module, line, imported, own, target))
    return sorted(out, key=lambda v: (v.line, v.imported))


def product_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def check_file(path: Path) -> list[Violation]:
    rel = path.relative_to(ROOT)
    is_package = rel.name == "__init__.py"
    module = ".".join(rel.parent.parts if is_package else rel.with_suffix("").parts)
    return check_source(path.read_text(encoding="utf-8"), module, str(rel), is_package)


# --- the product ---------------------------------------------------------------------------------


def test_every_product_module_imports_only_downward() -> None:
    files = product_files()
    assert len(files) > 100 and all(ROOT / p / "__init__.py" in files for p in PACKAGES)
    actors_top = sorted(p.stem for p in (ROOT / "actors").glob("*.py"))  # the actors only, and the packages
    assert actors_top == ["__init__", "dispatcher", "gateway", "master", "memory", "pool", "store", "workspace"], actors_top
    assert sorted(p.name for p in (ROOT / "actors").iterdir() if p.is_dir() and (p / "__init__.py").is_file()) == [
        "agents", "runtime", "storage"]
    assert not any("_fake_" in p.name or p.name.startswith(("sim_", "_sim_")) for p in files)
    violations = [v for path in files for v in check_file(path)]
    for v in violations:
        print(v)
    assert not violations, "imports against the layers:\n" + "\n".join(map(str, violations))


# --- the checker bites ---------------------------------------------------------------------------


def test_a_lazy_upward_import_inside_a_function_is_caught_with_its_file_line_and_import() -> None:
    source = ("from core.schemas import Plan\n\n\n"
              "def examples() -> None:\n"
              "    from actors.master import plan_prompt\n")
    (v,) = check_source(source, "memory.finetune", "memory/finetune.py")
    assert (v.file, v.line, v.imported, v.source_layer, v.target_layer) == (
        "memory/finetune.py", 5, "actors.master", "memory", "actors")
    assert str(v) == "memory/finetune.py:5: imports actors.master (memory may not import actors)"


def test_a_planted_upward_import_in_a_real_file_fails_the_check() -> None:
    real = ROOT / "core" / "plan.py"
    assert check_file(real) == []
    planted = real.read_text(encoding="utf-8") + "\n\ndef _lazy() -> None:\n    import serve_app.cli  # noqa\n"
    (v,) = check_source(planted, "core.plan", "core/plan.py")
    assert v.imported == "serve_app.cli" and v.line == planted.count("\n")


@pytest.mark.parametrize(("module", "source", "target"), [
    ("core.plan", "from integrations.llm.embedded import grammar_safe_schema", "integrations"),
    ("integrations.google.drive", "from memory.extract import extract", "memory"),
    ("memory.context", "import integrations.llm.client", "integrations"),
    ("memory.context", "from actors import agents", "agents"),
    ("actors.agents.specs", "from actors.runtime.handles import Handle", "actors"),
    ("actors.agents.tools.google", "from ...store import Store", "actors"),  # relative, resolved
    ("actors.store", "from serve_app import api", "serve_app"),
    ("integrations.actions.ledger", "from actors.runtime.apis import StoreApi", "actors"),  # the Workspace's helpers
    ("integrations.actions.providers", "from actors import workspace", "actors"),
    ("actors.agents.chat_batch", "from actors.runtime.typed import typed", "actors"),  # the batching is agents'
    ("ui.chat", "from actors.runtime.handles import Handle", "actors"),
    ("ui.chat", "from actors.agents import specs", "agents"),
    ("ui.chat", "from serve_app.auth import login", "serve_app"),
    ("core", "from . import schemas\nfrom ui import app", "ui"),  # a package's __init__
])
def test_each_kind_of_upward_import_is_refused(module: str, source: str, target: str) -> None:
    is_package = module == "core"
    found = check_source(source, module, is_package=is_package)
    assert [v.target_layer for v in found] == [target], found


@pytest.mark.parametrize(("module", "source"), [
    ("serve_app.server", "from ui.app import build_ui\nfrom actors.runtime import wiring\nfrom actors.agents import specs"),
    ("actors.pool", "from actors.agents import all_specs\nfrom memory.vectors import Hit"),
    ("actors.agents.tools.google", "from ..specs import AgentSpec\nfrom integrations.google import ops"),
    ("ui.client", "from core.memory_schemas import Feedback\nimport httpx"),
    ("integrations.llm.client", "import agents\nfrom agents import Runner"),  # a third party named agents
    ("memory.retrieval", "from memory.context import quotas_for\nfrom core.errors import portable"),
    ("integrations.google.drive", "from core.extract import extract\nfrom . import api"),
    ("integrations.actions.vault", "from .store import ActionStore\nfrom integrations.google.oauth import TokenSet"),
])
def test_downward_and_sideways_within_a_layer_pass(module: str, source: str) -> None:
    assert check_source(source, module) == []
