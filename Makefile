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

# the demo with the API and its live page up before the traffic; serves on until Ctrl-C
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

# Mutation testing of the pure decision code; not part of `make test` (about ten
# minutes on two cores). mutmut mutates the modules [tool.mutmut] names, in a copy
# of the tree under build/ (git-ignored, so its mutants/ reaches neither git nor
# ruff), runs their unit tests against each mutant and lists the mutants that no
# test killed; `cd build/mutation && ../../.venv/bin/mutmut show NAME` shows one.
MUTATION_DIR := build/mutation
MUTATION_JOBS ?= 2
.PHONY: mutation
mutation: install
	$(BIN)/pip install --quiet -c requirements.lock -e '.[mutation]'
	rm -rf $(MUTATION_DIR)
	mkdir -p $(MUTATION_DIR)
	tar -cf - --exclude=__pycache__ pyproject.toml schemas streams online_ctr tests \
		| tar -xf - -C $(MUTATION_DIR)
	cd $(MUTATION_DIR) && $(CURDIR)/$(BIN)/mutmut run --max-children $(MUTATION_JOBS)
	cd $(MUTATION_DIR) && $(CURDIR)/$(BIN)/mutmut results > results.txt
	@echo "surviving mutants:"
	@grep ': survived$$' $(MUTATION_DIR)/results.txt || echo "    none"
	@echo "not killed, by status:"
	@awk -F': ' '{n[$$2]++} END {for (s in n) printf "    %s: %d\n", s, n[s]}' \
		$(MUTATION_DIR)/results.txt
