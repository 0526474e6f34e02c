# The README's two commands: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export SCARF_NO_ANALYTICS := true
export DO_NOT_TRACK := true
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run serve ingest test test-fast test-all lint fix eval bench screenshots clean lock wheel

setup: $(STAMP)

# torch first, pinned and alone: any requirement that lets pip choose pulls a multi-GB CUDA
# build. Then the development lock (every package pinned with its hash; --no-deps: nothing
# outside it comes in, no torchvision, no timm), the project itself, and pip's consistency check.
$(STAMP): requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --no-deps torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)

ingest: setup
	$(BIN)/kb ingest docs_corpus/

# A local trial: loopback only, with the development identity headers on so that the pages work
# without signing in (the service refuses them on any other address). Production: tokens or
# OIDC (README, "Authentication"); KB_AUTH__DEV_HEADERS=false make serve tries that here.
serve: setup
	KB_AUTH__DEV_HEADERS=$${KB_AUTH__DEV_HEADERS:-true} $(BIN)/kb serve --host 127.0.0.1 --port 8000

run: ingest serve

test: setup
	$(BIN)/python -m pytest -m "not qdrant_server and not llm" $(PYTEST_ARGS)

# The everyday loop (issue 26): unit, contract and the fast integration tests on SQLite; no
# browser, no test marked slow (server processes started or killed, the wheel, the fuzz,
# corpora ingested twice, training), no second run of the database tests on PostgreSQL. Under
# four minutes on an idle machine with the embedding cache warm (.pytest_cache/).
test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not browser and not postgres and not qdrant_server and not llm" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy .

fix: setup
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

eval: setup
	$(BIN)/kb eval ../shared/datasets/emanual_tv ../shared/datasets/localgovfaq_ja eval/cases/sample.jsonl

# Performance figures of issue 9 (not part of `make test`): ratios against their targets, on
# stdout and in bench-results/<time>.json. The routine run (ingest, re-sync and query ratios,
# the 100k store) takes under 10 minutes; BENCH_ARGS="--full" adds the 1M store, the models,
# the levers and isolation (over an hour); BENCH_ARGS="--only ingest,query" picks sections.
bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

# Screenshots of every page, desktop (English) and phone width (Japanese), for the README
# (issue 25): the browser tests' app and Chromium (apt-get install chromium; a Japanese font
# such as fonts-ipafont-gothic or fonts-noto-cjk for the Japanese ones).
screenshots: setup
	KB_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/browser/test_screenshots.py -q

# Re-lock after changing pyproject.toml's dependencies (issue 24): runtime (the image) and
# development, both with hashes. torch stays out of the hashed lock: it is installed first from
# the pinned CPU wheel. KEEP=<file> holds the current versions while re-locking.
export CUSTOM_COMPILE_COMMAND := make lock
LOCK_FLAGS := --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links
lock:
	$(BIN)/pip-compile $(LOCK_FLAGS) --allow-unsafe $(if $(KEEP),-c $(KEEP)) \
		--extra server --extra postgres --extra redis -o requirements.lock pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) --unsafe-package torch -c requirements.lock $(if $(KEEP),-c $(KEEP)) \
		--extra st --extra server --extra postgres --extra redis --extra dev \
		-o requirements-dev.lock pyproject.toml

# The installable package (issue 24): dist/kb_assistant-<version>-py3-none-any.whl.
wheel: setup
	$(BIN)/pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w dist .

clean:
	rm -rf var .pytest_cache test-artifacts
