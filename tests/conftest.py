"""Shared test set-up: litellm stays offline, and no test can reach a real LLM endpoint."""

from __future__ import annotations

import os

pytest_plugins = ["tests._cluster"]

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
# Guard: anything that falls back to a default LLM address hits a closed local port.
os.environ.setdefault("OLLAMA_API_BASE", "http://127.0.0.1:9")
os.environ.setdefault("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
for _key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
    os.environ.pop(_key, None)
