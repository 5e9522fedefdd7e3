"""Test tools for Master Agent OS: not part of the product, never a fallback in it.

- :mod:`maos_testing.llm`: a simulated LLM server (Ollama and OpenAI wire protocols) that tests and
  benchmarks point the real litellm client at; ``maos dev sim-llm --port N`` runs it.
- :mod:`maos_testing.google`: a fake Google (OAuth, Gmail, Calendar, Drive) built on the discovery
  documents that google-api-python-client ships.

Installed by ``make setup`` (``pip install -e ./testing``) beside the product, as its own
distribution, so the product's wheel carries none of it.
"""
