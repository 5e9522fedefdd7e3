"""The pure parts of ``maos cluster``: the code version machines compare, the head's address, and what
``maos cluster status --json`` prints."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from actors.runtime import ray_node
from core.cluster_schemas import ClusterView, NodeView
from core.code_version import code_version, source_digest
from core.errors import ConfigError
from core.llm_schemas import LLMEndpointView
from serve_app.cli_cluster import print_status, ray_address


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


def test_status_says_what_runs_where_and_which_endpoint_is_down(capsys: pytest.CaptureFixture[str]) -> None:
    view = ClusterView(
        address="10.0.0.1:6379", head_version="0.1.0+0123456789ab", app_running=True,
        nodes=[NodeView(node_id="aa" * 28, address="10.0.0.1", alive=True, head=True, cpus=8, gpus=0, memory_gb=12.5,
                        actors=["gateway-0", "store"]),
               NodeView(node_id="bb" * 28, address="10.0.0.2", alive=True, head=False, cpus=16, gpus=1, memory_gb=40,
                        actors=["pool-email-1"]),
               NodeView(node_id="cc" * 28, address="10.0.0.3", alive=False, head=False, cpus=4, gpus=0, memory_gb=8)],
        endpoints=[LLMEndpointView(url="http://10.0.0.2:11434", slots=4, in_flight=4, up=True),
                   LLMEndpointView(url="http://10.0.0.3:11434", slots=2, in_flight=0, up=False,
                                   last_error="connection refused")],
        wait_reason="1 of 2 LLM endpoints down; all 4 LLM slots busy")
    print_status(view)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "cluster 10.0.0.1:6379 · maos 0.1.0+0123456789ab · 2 node(s) alive of 3"
    assert out[1].startswith("node 10.0.0.1 (head) aaaaaaaa · alive · 8 CPU · 0 GPU · 12.5 GB")
    assert out[2] == "  runs: gateway-0, store"
    assert out[3].startswith("node 10.0.0.2 bbbbbbbb · alive · 16 CPU · 1 GPU · 40 GB") and out[4] == "  runs: pool-email-1"
    assert out[5].startswith("node 10.0.0.3 cccccccc · DEAD")
    assert out[6:] == ["llm endpoint http://10.0.0.2:11434 · up · 4 of 4 slots busy",
                       "llm endpoint http://10.0.0.3:11434 · DOWN · 0 of 2 slots busy · connection refused",
                       "llm: work waits: 1 of 2 LLM endpoints down; all 4 LLM slots busy"]


def _fake_ray(tmp_path: Path, script: str) -> str:
    fake = tmp_path / "ray"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    return str(fake)


def test_a_node_that_missed_rays_start_up_window_is_started_again(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray gives a raylet a fixed 30 s to register; on a loaded machine ``ray start`` is run again."""
    count = tmp_path / "count"
    monkeypatch.setattr(ray_node, "ray_executable", lambda: _fake_ray(tmp_path, (
        f'echo x >> {count}\n'
        f'if [ $(wc -l < {count}) -lt 2 ]; then echo "Exception: The current node timed out during startup."; exit 1; fi\n'
        'echo "Ray runtime started."; exec sleep 60\n')))
    node = ray_node.start_started_node(["--address=h:1"], tmp_path / "log", timeout_s=30)
    try:
        assert node.running() and count.read_text().count("x") == 2
    finally:
        node.stop(timeout_s=5)
    assert not node.running()


def test_a_node_that_fails_otherwise_is_not_started_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = tmp_path / "count"
    monkeypatch.setattr(ray_node, "ray_executable", lambda: _fake_ray(tmp_path, (
        f'echo x >> {count}\necho "RuntimeError: Failed to connect to GCS: InvalidAuthToken"; exit 1\n')))
    with pytest.raises(ConfigError, match="InvalidAuthToken"):
        ray_node.start_started_node(["--address=h:1"], tmp_path / "log", timeout_s=30)
    assert count.read_text().count("x") == 1
