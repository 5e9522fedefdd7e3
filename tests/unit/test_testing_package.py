"""The test tools (the simulated LLM server, the fake Google) live in testing/, a distribution of
their own (``maos-testing``, imported as ``maos_testing``): the product neither ships nor imports
them. The one exception is ``maos dev sim-llm``, which runs the simulated server when the tools are
installed and says what to install when they are not."""

from __future__ import annotations

import ast
import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("core", "integrations", "memory", "actors", "serve_app", "ui")
TOOLS = "maos_testing"

# Where the product may name the test tools, and why: (file, function the import sits in).
ALLOWED = {("serve_app/cli.py", "_sim_llm"): "`maos dev sim-llm` runs the simulated LLM server, imported lazily"}


def _tool_imports(path: Path) -> list[tuple[int, str | None]]:
    """(line, enclosing function) of every import of the test tools in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and not child.level:
                names = [child.module or ""]
            if any(n == TOOLS or n.startswith(TOOLS + ".") for n in names):
                found.append((child.lineno, function))
            visit(child, inner)

    visit(tree, None)
    return found


def test_no_product_module_imports_the_test_tools_but_the_sim_llm_command() -> None:
    files = sorted(p for package in PRODUCT for p in (ROOT / package).rglob("*.py"))
    assert len(files) > 100
    where = {(str(p.relative_to(ROOT)), fn): line for p in files for line, fn in _tool_imports(p)}
    assert set(where) == set(ALLOWED), where
    # Nor by name in a string (an importlib call, a subprocess's -m): only the sim-llm command says it.
    named = [str(p.relative_to(ROOT)) for p in files if TOOLS in p.read_text(encoding="utf-8")]
    assert named == ["serve_app/cli.py"]


def test_the_tools_left_the_product_packages() -> None:
    for module in ("integrations.llm.sim_server", "integrations.llm.sim_thread", "integrations.llm._sim_replies",
                   "integrations.google.fake_server", "integrations.google._fake_gmail"):
        assert importlib.util.find_spec(module) is None, module
    leftovers = [p for package in PRODUCT for p in (ROOT / package).rglob("*.py")
                 if p.name.startswith(("sim_", "_sim_", "fake_", "_fake_"))]
    assert leftovers == []
    import maos_testing.google.fake_server
    import maos_testing.llm.sim_server

    for module in (maos_testing.llm.sim_server, maos_testing.google.fake_server):
        assert Path(str(module.__file__)).is_relative_to(ROOT / "testing" / TOOLS)  # this checkout's, installed -e


def test_the_product_distribution_ships_no_test_tools_and_no_aiohttp() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = find_packages(where=str(ROOT), include=include)
    assert {p.split(".")[0] for p in shipped} == set(PRODUCT)
    assert not any(p.startswith(("maos_testing", "testing", "tests", "benchmarks")) for p in shipped)
    assert not any(d.startswith("aiohttp") for d in project["project"]["dependencies"])  # the test tools' only
    tools = tomllib.loads((ROOT / "testing" / "pyproject.toml").read_text(encoding="utf-8"))
    assert tools["project"]["name"] == "maos-testing"
    found = find_packages(where=str(ROOT / "testing"), include=tools["tool"]["setuptools"]["packages"]["find"]["include"])
    assert sorted(found) == ["maos_testing", "maos_testing.google", "maos_testing.llm"]
    assert any(d.startswith("aiohttp") for d in tools["project"]["dependencies"])


def test_make_setup_installs_the_test_tools_beside_the_product() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert '-e ".[embedded,dev]" -e ./testing' in makefile
    assert "$(STAMP): pyproject.toml testing/pyproject.toml" in makefile  # a change to either re-runs set-up


def test_sim_llm_without_the_test_tools_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from serve_app import cli

    for name in [m for m in sys.modules if m == TOOLS or m.startswith(TOOLS + ".")] + [TOOLS]:
        monkeypatch.setitem(sys.modules, name, None)  # as on an install without the dev tools
    with pytest.raises(SystemExit) as exited:
        cli.main(["dev", "sim-llm", "--port", "11500"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "the test tools are not installed" in err and "pip install -e ./testing" in err and "make setup" in err


def test_sim_llm_does_not_hide_a_broken_import_inside_the_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    from serve_app import cli

    for name in [m for m in sys.modules if m.startswith(TOOLS + ".llm")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # a dependency of the tools is missing: its own error
    with pytest.raises(ModuleNotFoundError, match="aiohttp"):
        cli.main(["dev", "sim-llm", "--port", "11500"])
