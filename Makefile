# `make run` and `make test` do all the set-up on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint typecheck check clean-data system-deps test-deps vendor

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

## PostgreSQL + PostGIS binaries (apt-get when missing and root; see geo/embedded.py)
system-deps: $(STAMP)
	$(BIN)/python -c "from geo.embedded import ensure_binaries; ensure_binaries()"

## Real clients the end-to-end tests drive (GDAL, Chromium + chromedriver) and npm packages
test-deps: system-deps
	scripts/ensure-test-deps.sh

run: system-deps
	$(BIN)/geo run

test: test-deps
	$(BIN)/python -m pytest -q

bench: test-deps
	$(BIN)/python -m bench $(BENCH)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

## Refresh the MapLibre GL and PMTiles files the viewer serves (committed under tiles/static/vendor;
## pmtiles' npm package ships no licence file: its BSD-3 text is kept in pmtiles-LICENSE, and
## pmtiles-fflate-LICENSE is the licence of the fflate inflater bundled into pmtiles.js) and the
## Swagger UI files of /api.html (geo/static/swagger-ui), htmx and terra-draw (+ its MapLibre adapter;
## their npm packages ship no licence file: the MIT text is kept in terra-draw-LICENSE) for /console
## (console/static/vendor)
## and axe-core for the console's accessibility tests (tests/e2e/vendor), so neither npm nor a network is needed
## at run time, after changing a version in package.json
vendor:
	npm ci --no-audit --no-fund --loglevel=error
	cp node_modules/maplibre-gl/dist/maplibre-gl.js node_modules/maplibre-gl/dist/maplibre-gl.css \
	   node_modules/maplibre-gl/dist/LICENSE.txt tiles/static/vendor/
	node -p "require('./node_modules/maplibre-gl/package.json').version" > tiles/static/vendor/VERSION
	cp node_modules/pmtiles/dist/pmtiles.js tiles/static/vendor/
	cp node_modules/fflate/LICENSE tiles/static/vendor/pmtiles-fflate-LICENSE
	node -p "require('./node_modules/pmtiles/package.json').version" > tiles/static/vendor/pmtiles-VERSION
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
	   node_modules/swagger-ui-dist/favicon-32x32.png node_modules/swagger-ui-dist/LICENSE \
	   node_modules/swagger-ui-dist/NOTICE geo/static/swagger-ui/
	node -p "require('./node_modules/swagger-ui-dist/package.json').version" > geo/static/swagger-ui/VERSION
	mkdir -p console/static/vendor tests/e2e/vendor
	cp node_modules/htmx.org/dist/htmx.min.js console/static/vendor/
	cp node_modules/htmx.org/LICENSE console/static/vendor/htmx-LICENSE
	node -p "require('./node_modules/htmx.org/package.json').version" > console/static/vendor/htmx-VERSION
	cp node_modules/terra-draw/dist/terra-draw.umd.js \
	   node_modules/terra-draw-maplibre-gl-adapter/dist/terra-draw-maplibre-gl-adapter.umd.js \
	   console/static/vendor/
	node -p "require('./node_modules/terra-draw/package.json').version" > console/static/vendor/terra-draw-VERSION
	node -p "require('./node_modules/terra-draw-maplibre-gl-adapter/package.json').version" \
	   > console/static/vendor/terra-draw-maplibre-gl-adapter-VERSION
	cp node_modules/axe-core/axe.min.js tests/e2e/vendor/
	cp node_modules/axe-core/LICENSE tests/e2e/vendor/axe-LICENSE
	node -p "require('./node_modules/axe-core/package.json').version" > tests/e2e/vendor/axe-VERSION

clean-data:
	-$(BIN)/geo db stop
	rm -rf .data
