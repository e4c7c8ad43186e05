# `make run` and `make test` do all the set-up on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint typecheck check clean-data system-deps test-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

## PostgreSQL + PostGIS binaries (apt-get when missing and root; see geo/embedded.py)
system-deps: $(STAMP)
	$(BIN)/python -c "from geo.embedded import ensure_binaries; ensure_binaries()"

## Real clients the end-to-end tests drive (GDAL's ogrinfo/ogr2ogr)
test-deps: system-deps
	scripts/ensure-test-deps.sh

run: system-deps
	$(BIN)/geo run

test: test-deps
	$(BIN)/python -m pytest -q

bench: system-deps
	$(BIN)/python -m bench $(BENCH)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean-data:
	-$(BIN)/geo db stop
	rm -rf .data
