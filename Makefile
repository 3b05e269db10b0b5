# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

SCREENSHOTS ?= test-artifacts/screenshots
# pytest-xdist workers for make test (one per core; each test file stays on one worker, so a
# module's fixtures are built once). WORKERS=0 runs the suite in one process.
WORKERS ?= 2
# Debian packages the tests need: PostgreSQL 15 (a throwaway server per test session),
# Chromium (browser tests) and Java 17 (Spark, started from the pyspark wheel). Installed
# only when missing; nothing else is downloaded.
PG_BIN := $(firstword $(wildcard /usr/lib/postgresql/*/bin/postgres) $(shell command -v postgres 2>/dev/null))
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-concurrency test-fast lint format install install-dev system-deps demo clean \
	bench bench-small

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(VENV)/bin/activate
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## system-deps: apt-get install postgresql-15, chromium and Java 17 when they are missing
system-deps:
	@missing=""; \
	[ -n "$(PG_BIN)" ] || missing="$$missing postgresql-15"; \
	[ -x "$(CHROMIUM)" ] || missing="$$missing chromium"; \
	command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	if [ -n "$$missing" ]; then \
		echo "Installing$$missing (apt-get)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

BENCH_ARGS ?=
## make bench: the benchmark at 1,000,000 customers (~10,000,000 orders) against the pandas
## and polars baselines (polars comes with requirements-dev.txt); writes bench/RESULTS.md.
## Add e.g. BENCH_ARGS="--store FILE.duckdb" to reuse a store.
bench: install-dev
	$(PY) -m bench --customers 1000000 $(BENCH_ARGS)

## make bench-small: the same at 100,000 customers (a few minutes)
bench-small: install-dev
	$(PY) -m bench --customers 100000 $(BENCH_ARGS)

## make run: install, create the demo store and admin user on first start, serve the app
## with the scheduler inside the same process (crm_ui/server.py: DuckDB lets one process
## open the store; Ctrl+C stops both; CRM_SCHEDULER=off serves the app alone)
run: install
	$(PY) -m crm_core init
	$(PY) -m crm_ui.server --server.address 127.0.0.1 --server.port $(PORT)

## make test: install with dev tools and system packages, lint, run the whole suite
## (DuckDB and a throwaway PostgreSQL 15, browser tests in headless Chromium, the Spark parity
## suite on a Spark Connect server it starts on 127.0.0.1 and stops)
test: install-dev system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	rm -rf $(SCREENSHOTS)
	CRM_TEST_PG=require CRM_TEST_BROWSER=require CRM_TEST_SPARK=require CRM_CHROMIUM=$(CHROMIUM) \
		CRM_SCREENSHOTS=$(abspath $(SCREENSHOTS)) $(PY) -m pytest -n $(WORKERS) --dist loadfile --durations=15
	@echo "Screenshots of every view: $(SCREENSHOTS)/"

## make test-concurrency: 20 browser sessions read every view while an import and a scoring
## run write (CPU-heavy: about 10 minutes on 2 cores, so `make test` skips it; SESSIONS=n)
SESSIONS ?= 20
test-concurrency: install-dev system-deps
	CRM_TEST_CONCURRENCY=1 CRM_TEST_SESSIONS=$(SESSIONS) CRM_TEST_BROWSER=require \
		CRM_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -s tests/browser/test_concurrency.py

## make test-fast: the suite without slow tests (no browser), PostgreSQL when available
test-fast: install-dev
	$(PY) -m pytest -n $(WORKERS) --dist loadfile -m "not slow"

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
