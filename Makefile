# One-command setup: every target that runs code first makes sure .venv matches uv.lock.
# Works on a fresh clone with Python 3.10 and access to the package registries.

PYTHON ?= $(shell command -v python3.10 2>/dev/null || command -v python3)
VENV := .venv
STAMP := $(VENV)/.ctrflow-synced
UV := $(PYTHON) -m uv
PY := $(VENV)/bin/python
DEMO_DIR ?= .demo
# Test files run in parallel worker processes, each file whole and in order on one worker
# (module fixtures such as the day-by-day retrain scenario span a file's tests).
TEST_WORKERS ?= 2
PYTEST_ARGS ?=
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile --durations=15

.PHONY: setup test test-fast demo lock bench clean

setup: $(STAMP)

# Re-sync whenever the lock or the project metadata changes.
$(STAMP): uv.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' || \
		{ echo "ctrflow needs Python 3.10; $(PYTHON) is $$($(PYTHON) --version 2>&1). Install 3.10 or run make PYTHON=/path/to/python3.10"; exit 1; }
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --extra dev --python $(PYTHON)
	@touch $@

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_PARALLEL) $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/ctrflow demo --workdir $(DEMO_DIR)

# Benchmarks need the peer libraries of the bench extra.
bench: uv.lock pyproject.toml
	$(UV) sync --frozen --extra dev --extra bench --python $(PYTHON)
	@rm -f $(STAMP)

lock:
	$(UV) lock --python $(PYTHON)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
