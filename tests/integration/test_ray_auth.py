"""Ray is closed to strangers: the tests' Ray starts as the product's does (``runtime.use_token_auth``),
and a process without the cluster's token cannot join it, whatever it claims about auth; with the
token it can. Secrets reach the actors through Ray's key-value store, never as their arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray
from pydantic import SecretStr

from actors.runtime.boot import forget_secrets, publish_secrets, read_secrets
from core.settings import Settings

JOIN = "import ray; ray.init(address={address!r}, log_to_driver=False); print('joined', len(ray.nodes()))"


def join(address: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # A refused client retries its first GCS call once a second, 20 times by default: 3 is proof enough.
    clean.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", RAY_NUM_REDIS_GET_RETRIES="3", **env)
    return subprocess.run([sys.executable, "-c", JOIN.format(address=address)], env=clean, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def address(ray_session: None) -> str:
    return str(ray.get_runtime_context().gcs_address)


def test_a_client_without_the_token_is_refused(address: str, tmp_path: Path) -> None:
    for env in ({"RAY_AUTH_MODE": "disabled"}, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}, {}):
        refused = join(address, tmp_path, **env)
        assert refused.returncode != 0 and "joined" not in refused.stdout, env
        assert "auth" in (refused.stderr + refused.stdout).lower(), env


def test_a_client_with_the_token_file_joins(address: str, tmp_path: Path) -> None:
    token_path = os.environ["RAY_AUTH_TOKEN_PATH"]  # set by the product's use_token_auth for this session
    assert oct(Path(token_path).stat().st_mode & 0o777) == "0o600"
    joined = join(address, tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=token_path)
    assert joined.returncode == 0 and "joined 1" in joined.stdout, joined.stderr[-2000:]


def test_secrets_travel_in_the_key_value_store_not_in_settings_given_to_actors(ray_session: None,
                                                                              tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, namespace="secrets-test", encryption_key=SecretStr("k" * 44),
                        google_client_secret=SecretStr("g-secret"), llm_api_key=SecretStr("sk-llm"))
    shared = settings.without_secrets()
    assert shared.secrets() == {} and "g-secret" not in shared.model_dump_json()
    publish_secrets(settings)
    try:
        assert read_secrets("secrets-test") == {"encryption_key": "k" * 44, "google_client_secret": "g-secret",
                                                "llm_api_key": "sk-llm"}
        assert read_secrets("another-app") == {}
        assert shared.with_secrets(read_secrets("secrets-test")).secrets() == settings.secrets()
    finally:
        forget_secrets("secrets-test")
    assert read_secrets("secrets-test") == {}
