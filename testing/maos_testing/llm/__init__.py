"""The simulated LLM server: ``sim_server`` (the aiohttp app and ``maos dev sim-llm``) and
``sim_thread`` (the server in a background thread, for tests)."""
