# Two commands on a fresh machine with only Python 3.11: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint unit bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,devstack,bench]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/seatflow dev

lint: install
	$(BIN)/ruff check .

unit: install
	$(BIN)/pytest -q tests/unit

test: install lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench

chaos: install
	$(BIN)/python -m tests.chaos

clean:
	rm -rf $(VENV) .seatflow .pytest_cache .ruff_cache
