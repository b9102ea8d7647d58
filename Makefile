# AURA Lakehouse. `make demo` and `make test` create everything they need in .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# One pass alone runs on JOBS pytest-xdist workers, a test file per worker at a time (module
# fixtures once); on the server pass each worker has its own PostgreSQL database and Redis db.
# A pass waits on processes, disk and Redis more than it computes: a third worker on two cores
# overlaps the waits. `make test` runs every pass in lanes on 2 workers each (.ci/passes.sh).
JOBS ?= 3
PYTEST := $(PY) -m pytest -q -n $(JOBS) --dist loadfile
# What `make test-fast` leaves out: processes, the UI and browser, the demo, the attack suite.
FAST := not slow and not process and not browser and not reliability
SERVERS_UP := $(PY) -c "import socket; [socket.create_connection(('127.0.0.1', p), 1).close() for p in (5432, 6379)]"

.PHONY: install demo test test-fast test-embedded test-servers test-objstore test-rcluster reliability reliability-full bench lint ui clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet -e '.[embeddings]' \
		|| echo "== the embeddings extra did not install: its test skips and says why"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/aura demo

ui: install
	$(VENV)/bin/aura ui

# Lint and every test pass (embedded; PostgreSQL + Redis; Celery; S3 + REST catalog; Redis
# Cluster; reliability), in three lanes side by side with a database of their own each
# (.ci/passes.sh). A pass whose servers are missing is reported as skipped, with the reason.
test: install
	PY=$(PY) bash .ci/passes.sh

# The reliability and security suite (tests/reliability, marker `reliability`), CI sizes; on
# PostgreSQL when it answers. Figures go to .reliability.jsonl and the table of RELIABILITY.md.
RELIABILITY_RUN = rm -f .reliability.jsonl; \
	if $(SERVERS_UP) 2>/dev/null; then export AURA_TEST_SERVERS=1; fi; \
	AURA_RELIABILITY_OUT=$(CURDIR)/.reliability.jsonl $(PYTEST) -m reliability tests/reliability \
	&& $(PY) tests/reliability/report.py .reliability.jsonl RELIABILITY.md
reliability: install
	@echo "== reliability suite"
	@$(RELIABILITY_RUN)

# The issue's full sizes: 8 processes x 50 commits, 400 kills, 40,000 fuzzed events (long).
reliability-full: install
	@export AURA_RELIABILITY_SCALE=4.2; $(RELIABILITY_RUN)

# The quick loop while coding: the embedded pass without process, UI, demo or reliability tests.
test-fast: install
	$(PYTEST) -m "$(FAST)"

test-embedded: install
	$(PYTEST)

test-servers: install
	AURA_TEST_SERVERS=1 $(PYTEST)

# The whole suite on S3 + a REST catalog (what cannot apply skips with its reason; ~17 min here).
test-objstore: install
	PY=$(PY) bash .ci/objstore.sh

# The Redis Cluster pass: the memory and ingest suites and the routing/topology stream tests, on
# a 3-master cluster of its own (.ci/redis-cluster.sh: ports 7101-7103 or AURA_RCLUSTER_PORT..,
# no persistence, stopped at the end). One worker: a cluster has only database 0, which each
# test flushes.
RCLUSTER_TESTS := tests/memory tests/ingest tests/routing/test_routing_ingest.py \
	tests/topology/test_topology_pipeline.py tests/topology/test_topology_simulate.py \
	tests/core/test_stores.py tests/cli/test_doctor.py
test-rcluster: install
	@echo "== Redis Cluster pass: 3 masters, AURA_REDIS_URL=redis+cluster://"
	@trap 'bash .ci/redis-cluster.sh stop' EXIT; url=$$(bash .ci/redis-cluster.sh start) && \
		AURA_TEST_REDIS_CLUSTER=$$url $(PY) -m pytest -q -n 0 $(RCLUSTER_TESTS)

bench: install
	$(PY) -m bench

# The architecture contract (pyproject's [tool.importlinter]): layers aura_assets > aura_resources
# > quality > lakehouse, no Dagster in the library, no import cycle inside a package.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy lakehouse aura_resources aura_assets quality bench
	PYTHONPATH=. $(VENV)/bin/lint-imports

clean:
	rm -rf .aura .pytest_cache .test-logs
