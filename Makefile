# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint unit integration browser lock dashboard-vendor peers clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/automl serve --host 127.0.0.1 --port 8000 --with-worker

lint: $(STAMP)
	$(BIN)/ruff check api automl tasks tests benchmarks
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) browser
	$(BIN)/pytest -q tests/integration

# The dashboard test drives Debian's Chromium through Playwright (which downloads no browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the dashboard test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) lint browser
	$(BIN)/pytest -q -p no:cacheprovider --durations=15 tests

# Re-resolve exact versions (server + client + dev) after changing pyproject.toml.
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet --upgrade pip && .lockenv/bin/pip install --quiet ".[server,dev]"
	.lockenv/bin/pip freeze --exclude keras-automl-service > requirements.lock
	rm -rf .lockenv

# The quality benchmark's peers (AutoGluon-Tabular, RealMLP-TD) in their own environment, never the service's.
PEERS_VENV := .peers-venv
peers: $(PEERS_VENV)/.installed
$(PEERS_VENV)/.installed:
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(PEERS_VENV)/bin/python -m pip install --quiet "autogluon.tabular[lightgbm,catboost,xgboost]==1.6.3" "pytabkit==1.8.0"
	@touch $@

# Re-fetch the dashboard's vendored uPlot from the npm registry (version in api/dashboard/vendor.json).
dashboard-vendor: $(STAMP)
	$(BIN)/python -m api.dashboard.vendor

clean:
	rm -rf $(VENV) $(PEERS_VENV) var .pytest_cache .mypy_cache .ruff_cache
