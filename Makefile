# Pulse & Beacon — the two commands a new user runs first: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PYZ ?= dist/beacon.pyz
PYZ_PIP_ARGS ?=
PORT ?= 5000

.PHONY: run test lint bench clean servers beacon-pyz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

## make run: Pulse on embedded defaults (SQLite file, in-process fakeredis and scheduler)
run: $(STAMP)
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/flask --app wsgi bootstrap-admin
	$(BIN)/flask --app wsgi serve --host $(HOST) --port $(PORT)

## make servers: system packages the test suite needs (redis-server; PostgreSQL binaries)
servers:
	@bash scripts/ensure-servers.sh

## make test: the whole suite against throwaway real PostgreSQL, Redis and Celery processes
test: $(STAMP) servers
	$(BIN)/ruff check .
	$(BIN)/pytest -q $(PYTEST_ARGS)

## make beacon-pyz: dist/beacon.pyz, the agent as one file (`python3 beacon.pyz start -c beacon.yaml`)
beacon-pyz: $(STAMP)
	BIN=$(BIN) bash scripts/build-pyz.sh $(PYZ) $(PYZ_PIP_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP) servers
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) instance .pytest_cache build dist
