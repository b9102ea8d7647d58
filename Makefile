# AURA Lakehouse. `make demo` and `make test` create everything they need in .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
SERVERS_UP := $(PY) -c "import socket; [socket.create_connection(('127.0.0.1', p), 1).close() for p in (5432, 6379)]"

.PHONY: install demo test test-embedded test-servers bench lint ui clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/aura demo

ui: install
	$(VENV)/bin/aura ui

# Lint, the suite on embedded defaults, then the same suite against PostgreSQL and Redis when
# they answer.
test: install lint
	$(PY) -m pytest -q
	@if $(SERVERS_UP) 2>/dev/null; then \
		echo "== server pass: PostgreSQL catalog + Redis server"; \
		AURA_TEST_SERVERS=1 $(PY) -m pytest -q; \
	else \
		echo "== server pass skipped: no PostgreSQL on 127.0.0.1:5432 or Redis on 127.0.0.1:6379"; \
	fi

test-embedded: install
	$(PY) -m pytest -q

test-servers: install
	AURA_TEST_SERVERS=1 $(PY) -m pytest -q

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
	rm -rf .aura .pytest_cache
