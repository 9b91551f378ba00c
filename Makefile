# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi

.PHONY: run test test-fast test-postgres bench bench-dashboard install install-dev browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt

# Debian's Chromium for the browser tests (Playwright can't download its own here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  elif [ -n "$$CI" ]; then echo "chromium is not installed and can't be installed (not root): CI fails"; exit 1; \
	  else echo "chromium not installed: browser tests will be skipped"; fi; }

## Run web + worker on the embedded default (SQLite, no Redis) at http://127.0.0.1:5000
run: install
	$(BIN)/flask --app wsgi setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile.dev start

## Run the whole test suite under coverage (SQLite; set TEST_DATABASE_URL for PostgreSQL); prints the
## coverage per package and fails below .ci/coverage-floor. Worker and gunicorn processes are measured too.
## COVERAGE=0 runs the same suite without measuring (CI's PostgreSQL leg: tracing every worker costs time)
COVERAGE ?= 1
test: install-dev browser
ifeq ($(COVERAGE),0)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
else
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS); status=$$?; \
	  $(BIN)/python .ci/coverage_report.py || status=1; exit $$status
endif

## The edit-test loop: everything but the browser, fault, slow and worker-process tests, spread over
## FAST_WORKERS pytest processes (default: one per core; each has its own redis-server and database)
FAST_WORKERS ?= auto
test-fast: install-dev
	$(BIN)/python -m pytest -m "not browser and not fault and not slow and not worker" --require-markers= -q \
	  -n $(FAST_WORKERS) $(PYTEST_ARGS)

test-postgres:
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres} $(MAKE) test

## Benchmarks: print a table and write JSON under bench/results/ (with the fault suite's figures)
bench: install-dev
	$(BIN)/python -m bench.engine --faults

## Dashboard latency, search and pruning over ROWS seeded jobs (SQLite and PostgreSQL); TENANTS=100
## spreads them over 100 tenants and measures as one tenant's user
ROWS ?= 1000000
TENANTS ?= 0
bench-dashboard: install-dev
	$(BIN)/python -m bench.dashboard --rows $(ROWS) --tenants $(TENANTS)

clean:
	rm -rf $(VENV) .pytest_cache instance
