# gate_pipeline — `make run` and `make test` are all a newcomer needs (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME := $(CURDIR)/var/dagster_home
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000

.PHONY: lock setup run test test-fast check-defs ui ui-readonly bench bench-decisions lint browser-deps postgres-deps redis-deps sample

# Every dependency is pinned in constraints.txt (Dagster 1.13.N moves with its integrations at 0.29.N);
# `make lock` re-resolves it deliberately.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	$(PY) -m compileall -q gate_pipeline >/dev/null  # as a regular install does: CLI calls start faster
	touch $@

setup: $(VENV)/.installed
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

## Re-pin every dependency to the newest versions pyproject.toml allows (then run `make test` and commit).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip && .lock-venv/bin/pip install -q -e '.[test]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^gate_pipeline' > constraints.txt
	rm -rf .lock-venv
	@grep -E '^dagster' constraints.txt

## Materialize the whole DAG on the bundled sample artifacts and print where the outputs are.
run: setup
	$(VENV)/bin/gate-pipeline run

## Headless Chromium for the UI tests (Debian's package; no browser downloads).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: install Debian's chromium package for the browser tests"; fi; }

## A PostgreSQL server for the scale-out test (Debian's package; the test starts its own throwaway cluster).
postgres-deps:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL missing: install Debian's postgresql package for the scale-out test"; fi; }

## A Redis server as the celery broker for the fan-out test (Debian's package; the test starts its own on loopback).
redis-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else echo "redis-server missing: install Debian's redis-server package for the celery test"; fi; }

## The whole test suite (unit, S3 on a loopback moto server, Postgres, Dagster services, browser), and the
## definitions loaded the dg way.
test: setup browser-deps postgres-deps redis-deps check-defs
	$(PY) -m pytest

## The inner loop: unit tests and in-process Dagster runs; no servers, no slow tests.
FAST_MARKERS := not e2e and not browser and not postgres and not s3 and not slow
test-fast: setup
	$(PY) -m pytest -q -m "$(FAST_MARKERS)"

## `dg check defs`: gate_pipeline/defs/ loads with dg.load_from_defs_folder and every definition is valid.
check-defs: setup
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/dg check defs

## Dagster UI on the sample (materialized first if it never was), bound to $(UI_HOST):$(UI_PORT).
ui: setup
	@test -f var/outputs/rollout_series.csv || $(VENV)/bin/gate-pipeline run
	$(VENV)/bin/dagster dev -w workspace.yaml -h $(UI_HOST) -p $(UI_PORT)

## A read-only UI for viewers: no launching, no sensor toggling.
ui-readonly: setup
	$(VENV)/bin/dagster-webserver -w workspace.yaml -h $(UI_HOST) -p $(UI_PORT) --read-only

bench: setup
	$(PY) bench/run_bench.py $(BENCH_ARGS)

## Operating characteristics of the decision (simulated rollouts, every run and daily looks) into docs/DECISIONS.md.
bench-decisions: setup
	$(PY) bench/decisions.py --write $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

## Regenerate the bundled sample (deterministic; a test checks it matches).
sample: setup
	rm -rf gate_pipeline/sample_artifacts && $(PY) -m gate_pipeline.synthetic --sample --out gate_pipeline/sample_artifacts
