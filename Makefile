# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint unit integration lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/automl serve --host 127.0.0.1 --port 8000 --with-worker

lint: $(STAMP)
	$(BIN)/ruff check api automl tasks tests
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

test: $(STAMP) lint
	$(BIN)/pytest -q -p no:cacheprovider --durations=15 tests

# Re-resolve exact versions (runtime + dev) after changing pyproject.toml.
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet --upgrade pip && .lockenv/bin/pip install --quiet ".[dev]"
	.lockenv/bin/pip freeze --exclude keras-automl-service > requirements.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
