# The two commands of the README: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint typecheck unit clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "sdh needs Python 3.11 or newer (found $$($(PYTHON) --version)); set PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --editable '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

## run: sdh on its embedded default (SQLite in ./.sdh, no NATS), on http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/sdh serve

## test: lint, type-check and the whole suite (needs PostgreSQL and NATS on 127.0.0.1)
test: lint typecheck
	$(BIN)/pytest -n 2 --dist loadfile -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

clean:
	rm -rf $(VENV) .sdh .mypy_cache .ruff_cache .pytest_cache
