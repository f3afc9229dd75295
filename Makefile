# bertctr: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo serve test lint typecheck unit integration bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first: `pip install torch==2.13.0` takes the CPU build from local disk;
# then the project with every pinned dependency (requirements.lock as constraints).
$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip==24.3.1
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/bertctr demo

# the demo, then the API and its live page on its data until Ctrl-C
serve: install
	$(BIN)/bertctr demo --serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q tests/integration

test: install lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider tests

bench: install
	$(BIN)/python bench/bench_join.py
	$(BIN)/python bench/bench_model.py
	$(BIN)/python bench/bench_encoder.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
