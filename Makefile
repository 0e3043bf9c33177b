# jsproj: `make demo` runs the main job, `make test` runs every test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

PG_SITE := /usr/local/lib/jsproj/site

.PHONY: install postgres pg-extensions pg-languages chromium demo test test-all test-fast test-lowest lowest-venv lint pytest node-test bench bench-quick bench-scale bench-deps soak clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt js/client/package-lock.json
	@$(MAKE) --no-print-directory postgres
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e '.[test,binary,server]'
	@command -v node >/dev/null || { echo "Node.js (node) is required for the Node host and its tests"; exit 1; }
	cd js/client && npm ci --silent --no-audit --no-fund
	touch $(STAMP)

# The PostgreSQL server programs jsproj runs its databases with (Debian's package when missing).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq postgresql; } || \
	  { echo "PostgreSQL server programs (initdb, pg_ctl) are missing: install PostgreSQL"; exit 1; }

# What the in-database engine needs: plpython3u, and mini-racer (the pinned
# version) where the server's Python finds it (jsproj.python_path, default $(PG_SITE)).
pg-extensions: install
	@ls /usr/lib/postgresql/*/lib/plpython3.so >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    apt-get install -y -qq postgresql-plpython3-$$(ls /usr/lib/postgresql | sort -V | tail -1); } || \
	  { echo "plpython3u is missing: install postgresql-plpython3 (as root)"; exit 1; }
	@version=$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("mini-racer"))'); \
	  test -d $(PG_SITE)/mini_racer-$$version.dist-info || \
	  { rm -rf $(PG_SITE) && $(BIN)/python -m pip install --quiet --target $(PG_SITE) "mini-racer==$$version"; }
	@$(MAKE) --no-print-directory pg-languages

# The JavaScript procedural languages, engines plv8 and pljs, as jsproj needs them: with their execution
# timeout compiled in (jsproj's time limit per call: a deploy refuses a language without it) and
# jsproj's own patches (deploy/pg-js/README.md), built from PG_JS (../shared/pg-js: sources and build
# scripts, ~15-25 s each) whenever what is installed was built otherwise (a stamp records the build).
# Without PG_JS: the platform's package (postgresql-NN-plv8 from the PostgreSQL apt repository), if any.
# Without either, their tests skip (CI fails them).
PG_JS ?= ../shared/pg-js
PG_JS_STAMP := /usr/local/lib/jsproj/pg-js.stamp
PLV8_PATCHES := $(sort $(wildcard $(CURDIR)/deploy/pg-js/plv8-*.patch))
PLJS_PATCHES := $(sort $(wildcard $(CURDIR)/deploy/pg-js/pljs-*.patch))
PG_JS_BUILD := PLV8_EXTRA_PATCHES="$(PLV8_PATCHES)" PLJS_EXTRA_PATCHES="$(PLJS_PATCHES)"
pg-languages:
	@pgv=$$(ls /usr/lib/postgresql | sort -V | tail -1); ext=/usr/share/postgresql/$$pgv/extension; \
	want=$$(echo '$(notdir $(PLV8_PATCHES)) / $(notdir $(PLJS_PATCHES))' | cat - $(PLV8_PATCHES) $(PLJS_PATCHES) | \
	  sha256sum | cut -c1-16); \
	if [ -x $(PG_JS)/build-plv8.sh ] && [ "$$(id -u)" = 0 ]; then \
	  if [ ! -f $$ext/plv8.control ] || [ ! -f $$ext/pljs.control ] || [ "$$(cat $(PG_JS_STAMP) 2>/dev/null)" != "$$want" ]; then \
	    echo "building plv8 and pljs from $(PG_JS) (execution timeouts, deploy/pg-js patches)"; \
	    $(PG_JS_BUILD) RUN_TESTS=0 $(PG_JS)/build-plv8.sh $(PG_JS)/plv8-v3.1.10.tar.gz && \
	    $(PG_JS_BUILD) RUN_TESTS=0 $(PG_JS)/build-pljs.sh $(PG_JS)/pljs-1.0.5.tar.gz $(PG_JS)/quickjs-19abf18.tar.gz && \
	    mkdir -p $$(dirname $(PG_JS_STAMP)) && echo "$$want" > $(PG_JS_STAMP) || exit 1; \
	  fi; \
	elif [ ! -f $$ext/plv8.control ] && [ "$$(id -u)" = 0 ] && \
	   apt-cache policy postgresql-$$pgv-plv8 2>/dev/null | grep -q 'Candidate: [0-9]'; then \
	  apt-get install -y -qq postgresql-$$pgv-plv8; fi; \
	for lang in plv8 pljs; do [ -f $$ext/$$lang.control ] || \
	  echo "note: $$lang is not installed (no platform package, no $(PG_JS)): its tests will skip"; done

# The browser the dashboard's page test renders it in (tests/cli/test_dashboard.py): Debian's package when
# missing, as root; elsewhere that test skips (CI sets JSPROJ_REQUIRE_CHROMIUM: it fails instead).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } || \
	  echo "note: chromium is not installed (install it as root: apt-get install chromium): the dashboard's page test will skip"

demo: install
	$(BIN)/jsproj demo

# What the tests need first, one step at a time (apt-get takes one lock); then two jobs at a time: pytest,
# and beside it lint, the Node tests, the lowest bounds' venv (pip: the network and the disk) and its smoke
# run, which fill the cores pytest leaves idle (its workers wait on subprocesses and conditions).
test:
	@$(MAKE) --no-print-directory install pg-extensions chromium
	@$(MAKE) --no-print-directory -j2 test-all
test-all: pytest lint node-test test-lowest

# lint, and the tests not marked slow (pytest -m "not slow"), with the Node tests. It leaves out: the
# short soak, PostgreSQL restarts and crashes, replicas and failovers, daemons killed or stopped midway, several daemons
# (partitions), the doc scripts, the hypothesis runs over every host (batching, equivalence, projection
# names), npm packing and tsc, the wheel, the large conformance case (many-streams), the conformance
# suite beyond the Python host (FAST_HOSTS) and the hostile corpus beyond the Python host, PLV8 and
# PL/JS (test_languages), what every in-database engine runs alike beyond PLV8 (engine_params), the docs'
# examples and scripts, versions, worker recycling, the pytest plugin, operations (long builds, health),
# the CLI's embedded database and the initdb cache's clusters, the demo and the spec runs in real stores, the Node
# client's tests on engines beyond PLV8, and a few slow sandbox-limit tests.
test-fast: lint install pg-extensions
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal -m "not slow"
	cd js && node --test test/

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# pytest-xdist workers, each with its own session PostgreSQL (on tmpfs when there is one) and
# per-test databases: one more than the cores, so that a worker waiting on a subprocess or a
# condition leaves its core to another (2026-12-06, 2 cores: 244 s with 3 workers, 246 s with 4,
# 258 s with 2).
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

# The dependencies' lower bounds (constraints-lowest.txt) in a venv of their own, as a smoke run (~70
# tests, ~10 s) of the paths that call them: the store, sync and asyncio, on psycopg and psycopg-pool's
# pools (test_store's appends, batches, reads and migrations; test_transactions), the sandbox (mini-racer), the
# CLI (click, rich), the REPL in a terminal and on a store (prompt-toolkit), one conformance host (the asyncio store with the Python
# engine inline), the daemon catching up and its status (LISTEN/NOTIFY, rich), a subscription woken by
# NOTIFY, and the daemon's metrics (prometheus-client). Everything else runs jsproj's own code on the same
# dependencies' APIs: make pytest runs all of it.
LOWEST := .venv-lowest
LOWEST_TESTS := tests/store/test_store.py::test_append_a_message \
  tests/store/test_store.py::test_wrong_expected_version_is_a_concurrency_error_that_burns_nothing \
  tests/store/test_store.py::test_a_batch_counts_its_earlier_messages_for_versions_and_stream_types \
  tests/store/test_store.py::test_fetch_stream_versions_and_unknown_streams tests/store/test_store.py::test_read_all_pages_in_order \
  tests/store/test_store.py::test_migrate_is_idempotent_and_refuses_changed_or_unknown_migrations \
  tests/store/test_store.py::test_an_unreachable_database_is_a_clear_error tests/store/test_transactions.py \
  tests/engine/test_sandbox.py::test_endless_loop_stops_at_the_time_limit_naming_the_projection \
  tests/engine/test_sandbox.py::test_growing_allocation_stops_at_the_memory_limit \
  tests/engine/test_sandbox.py::test_a_killed_worker_is_replaced_and_the_projections_reloaded \
  tests/cli/test_cli.py::test_every_command_has_help_with_examples tests/cli/test_cli.py::test_simulate_reads_stdin_and_prints_tables \
  tests/cli/test_cli.py::test_verbose_adds_the_traceback \
  tests/cli/test_repl.py::test_the_repl_appends_views_reloads_a_changed_projection_and_exits \
  tests/cli/test_repl.py::test_a_store_session_appends_to_postgres_and_refuses_undo \
  tests/conformance/test_conformance.py::test_case_in_every_host \
  tests/follow/test_daemon.py::test_async_projections_catch_up_and_match_a_fold_from_scratch \
  tests/follow/test_daemon.py::test_status_shows_lag_holders_and_the_cli \
  tests/follow/test_subscriptions.py::test_subscribing_wakes_on_the_notify_trigger_and_a_deploy_keeps_it \
  tests/follow/test_operations.py::test_metrics_move_with_appends_and_healthz_follows_the_database
LOWEST_SELECT := not bad_message and (not every_host or (inline-python-asyncio and \
  (aggregate or stream-projection or view-fan-out or event-metadata)))
LOWEST_RUN = $(LOWEST)/bin/pytest -p no:cacheprovider -n 1 --dist worksteal -k "$(LOWEST_SELECT)" $(LOWEST_TESTS)
test-lowest: lowest-venv pg-extensions
	$(LOWEST_RUN)
lowest-venv: install
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --no-compile -c constraints-lowest.txt -e '.[binary]' \
	  $$(grep -E '^(pytest|pytest-timeout|pytest-xdist|hypothesis|pexpect)==' constraints.txt)
	$(LOWEST)/bin/python -m pip list 2>/dev/null | grep -iE '^(mini-racer|psycopg|psycopg-pool|click|rich|prompt.toolkit|prometheus.client) '
pytest: install pg-extensions chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal

node-test:
	cd js && node --test test/

# Benchmarks against the peers and the limits (docs/benchmarks.md); not tests.
bench-deps: install pg-extensions
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,bench,binary]'
	cd bench/node && npm ci --silent --no-audit --no-fund

bench: bench-deps
	$(BIN)/python bench/run.py

bench-quick: bench-deps
	$(BIN)/python bench/run.py --quick

# The partitioned log against one table at 50M events (issue 31; docs/benchmarks-scale.md): ~30 min, ~40 GB of
# disk under the temp dir. BENCH_SCALE_ARGS="--events 1000000" for a smoke run.
bench-scale: bench-deps
	$(BIN)/python bench/scale.py $(BENCH_SCALE_ARGS)

# Mixed load with periodic kills, then every invariant checked (docs/reliability.md).
# `make test` runs a short one (tests/follow/test_soak.py).
SOAK_SECONDS ?= 600
soak: install pg-extensions
	$(BIN)/python tests/soak.py --duration $(SOAK_SECONDS)

clean:
	rm -rf $(VENV) $(LOWEST) build dist .pytest_cache .ruff_cache
