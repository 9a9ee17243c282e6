# Two entry points, as in the README: `make serve` and `make test`.
# Both create .venv from the hashed lock on first use (and again when the lock changes).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: serve test lint lock

$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/ctplan serve

test: $(STAMP)
	$(VENV)/bin/ruff check planner dicom_node api sample_series tests bench
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff format --check planner dicom_node api sample_series tests
	$(VENV)/bin/mypy

# Regenerate the locks after changing dependencies in pyproject.toml (needs uv).
lock:
	uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements.lock
	uv pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes -o requirements-dev.lock
