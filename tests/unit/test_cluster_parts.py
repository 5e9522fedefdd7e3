"""The pure parts of ``maos cluster``: the code version machines compare, the head's address, and what
``maos cluster status --json`` prints."""

from __future__ import annotations

import pickle
from pathlib import Path

from core.cluster_schemas import ClusterView, NodeView
from core.code_version import code_version, source_digest
from core.llm_schemas import LLMEndpointView
from serve_app.cli_cluster import ray_address


def _tree(root: Path) -> None:
    (root / "core" / "prompts").mkdir(parents=True)
    (root / "core" / "a.py").write_text("x = 1\n")
    (root / "core" / "prompts" / "plan.md").write_text("plan\n")


def test_the_digest_changes_with_any_source_file_and_ignores_caches(tmp_path: Path) -> None:
    _tree(tmp_path)
    first = source_digest(tmp_path, ("core",))
    (tmp_path / "core" / "__pycache__").mkdir()
    (tmp_path / "core" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "core" / "notes.log").write_text("not code")
    assert source_digest(tmp_path, ("core",)) == first
    (tmp_path / "core" / "prompts" / "plan.md").write_text("plan, changed\n")
    assert source_digest(tmp_path, ("core",)) != first
    (tmp_path / "core" / "prompts" / "plan.md").write_text("plan\n")
    assert source_digest(tmp_path, ("core",)) == first
    (tmp_path / "core" / "prompts" / "plan.md").rename(tmp_path / "core" / "prompts" / "other.md")
    assert source_digest(tmp_path, ("core",)) != first  # a renamed file is other code


def test_the_code_version_is_the_package_version_and_a_digest() -> None:
    version, _, digest = code_version().partition("+")
    assert version and len(digest) == 12 and int(digest, 16) >= 0


def test_a_head_address_without_a_port_gets_rays() -> None:
    assert ray_address("192.168.1.10") == "192.168.1.10:6379"
    assert ray_address("192.168.1.10:7000") == "192.168.1.10:7000"
    assert ray_address("head.lan") == "head.lan:6379"


def test_the_cluster_view_round_trips_through_json_and_pickle() -> None:
    view = ClusterView(address="10.0.0.1:6379", head_version="0.1.0+0123456789ab", app_running=True,
                       nodes=[NodeView(node_id="ab" * 28, address="10.0.0.1", alive=True, head=True, cpus=8, gpus=1,
                                       memory_gb=12.5, actors=["store", "gateway-0"])],
                       endpoints=[LLMEndpointView(url="http://10.0.0.2:11434", slots=4, in_flight=1, up=True)],
                       wait_reason="all 4 LLM slots busy")
    assert ClusterView.model_validate_json(view.model_dump_json()) == view
    assert pickle.loads(pickle.dumps(view)) == view
