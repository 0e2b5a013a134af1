# svarstid — `make demo` runs the product on embedded defaults, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast test-integration lint typecheck bench fuzz clean install

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/svarstid demo

lint: $(STAMP)
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

test-integration: $(STAMP)
	bash scripts/integration-setup
	$(BIN)/pytest -q -m integration

test: lint typecheck
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
