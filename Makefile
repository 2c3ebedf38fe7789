# Two commands for a fresh machine with Python 3.11:
#   make run    set everything up, then run the main job on the built-in data (into runs/)
#   make test   set everything up, then run the whole test suite (what CI runs)
VENV ?= .venv
PYTHON ?= python3.11
BIN := $(VENV)/bin

.PHONY: setup run test test-fast lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or make PYTHON=python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# The main job writes to runs/quickstart/ (git-ignored), so it never dirties a checkout;
# published results go to results/ only through an explicit --out results/<name>.
run: setup
	$(BIN)/ocfb-suite sweep configs/quickstart.yaml --out runs/quickstart

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# everything but Ray sweeps, resume kills, W&B end to end and real data
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
