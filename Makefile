# jsproj: `make demo` runs the main job, `make test` runs every test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install postgres demo test lint pytest node-test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory postgres
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@command -v node >/dev/null || { echo "Node.js (node) is required for the Node host and its tests"; exit 1; }
	touch $(STAMP)

# The PostgreSQL server programs jsproj runs its databases with (Debian's package when missing).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq postgresql; } || \
	  { echo "PostgreSQL server programs (initdb, pg_ctl) are missing: install PostgreSQL"; exit 1; }

demo: install
	$(BIN)/jsproj demo

test: lint pytest node-test

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

pytest: install
	$(BIN)/pytest

node-test:
	cd js && node --test test/

bench: install
	$(BIN)/python bench/engine_fold.py
	$(BIN)/python bench/store_bench.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
