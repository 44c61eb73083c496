# The two commands: `make up` runs Bastion on its embedded defaults; `make test` runs every quality gate.
# Both create .venv if missing and install from the hashed lock files in requirements/.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --no-input --quiet

.PHONY: up test lint typecheck imports pytest install install-dev bench clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-main: requirements/main.txt requirements/build.txt pyproject.toml | $(BIN)/python
	$(PIP) install --require-hashes -r requirements/build.txt
	$(PIP) install --require-hashes -r requirements/main.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: requirements/dev.txt requirements/build.txt pyproject.toml | $(BIN)/python
	$(PIP) install --require-hashes -r requirements/build.txt
	$(PIP) install --require-hashes -r requirements/dev.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed-main
install-dev: $(VENV)/.installed-dev

up: install
	$(BIN)/bastion up

test: install-dev lint typecheck imports pytest

lint: install-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install-dev
	$(BIN)/mypy

imports: install-dev
	$(BIN)/lint-imports

pytest: install-dev
	$(BIN)/pytest

bench: install-dev
	$(BIN)/python -m benchmarks

# Regenerate the lock files after changing dependencies in pyproject.toml (needs pip-tools).
lock:
	pip-compile --generate-hashes --strip-extras --allow-unsafe -o requirements/main.txt pyproject.toml
	pip-compile --generate-hashes --strip-extras --allow-unsafe --extra dev -o requirements/dev.txt pyproject.toml
	pip-compile --generate-hashes --allow-unsafe -o requirements/build.txt requirements/build.in

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .import_linter_cache
