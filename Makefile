# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
# pip on these machines is configured with a find-links folder holding the CPU build of torch 2.13.0;
# uv does not read pip's configuration, so pass it on explicitly.
FIND_LINKS := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
UV_FIND_LINKS_ARGS := $(foreach d,$(FIND_LINKS),--find-links $(d))
PYTEST_ARGS ?=

.PHONY: install demo test bench lint format lock clean stack stack-down stack-status

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "uv==0.13.8"
	$(UV) pip sync --python $(PY) $(UV_FIND_LINKS_ARGS) requirements.lock
	$(UV) pip install --python $(PY) --no-deps -e .
	@touch $(STAMP)

# Re-resolve the lock after changing dependencies in pyproject.toml (needs the package index).
lock:
	$(UV) pip compile pyproject.toml --extra dev $(UV_FIND_LINKS_ARGS) --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 -o requirements.lock

demo: $(STAMP)
	$(VENV)/bin/crisp demo $(DEMO_ARGS)

test: $(STAMP)
	@bash scripts/ensure_chromium.sh || echo "warning: chromium unavailable; the report-render test will fail"
	@bash scripts/ensure_docker_compose.sh || echo "warning: docker-compose unavailable; tests/infra/test_compose.py will skip"
	$(PY) -m pytest -q -ra --durations=25 $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

# A production-shaped stack on this machine, no containers (scripts/stack.py, wiring in infra/stack.env):
# PostgreSQL, moto S3, Dask scheduler + 2 workers, MLflow server, Airflow 3 on LocalExecutor.
stack: $(STAMP)
	$(PY) scripts/stack.py up

stack-down:
	$(PY) scripts/stack.py down

stack-status:
	$(PY) scripts/stack.py status

bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) data demo-out .pytest_cache .ruff_cache
