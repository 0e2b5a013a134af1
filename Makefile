# svarstid — `make demo` runs the product on embedded defaults, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast test-integration integration-setup lint typecheck bench fuzz clean install

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/svarstid demo

lint: $(STAMP)
	$(BIN)/ruff check monitor tests bench fuzz
	$(BIN)/ruff format --check monitor tests bench fuzz

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict bench fuzz

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

integration-setup:
	bash scripts/integration-setup

test-integration: $(STAMP) integration-setup
	$(BIN)/pytest -q -m integration

# Every test: lint, types, the fast tier (real sockets to in-process servers) and the
# integration tier (PostgreSQL, Postfix, Dovecot, promtool, Chromium on loopback, and the
# container image built and run by podman).
test: lint typecheck integration-setup
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

fuzz: $(STAMP)
	$(BIN)/python -m fuzz --cases 100000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
