# The two commands: `make run` (broker + worker) and `make test` (everything CI checks).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint venv schemas bench clean kafka-start kafka-stop send-absence

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP)

run: $(STAMP)
	scripts/run

test: $(STAMP)
	scripts/test

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

schemas: $(STAMP)
	$(PY) -m schemas export

bench: $(STAMP)
	scripts/bench

send-absence: $(STAMP)
	$(VENV)/bin/missing-alerts send-absence --child $(or $(CHILD),C123) --risk trafficking

kafka-start:
	scripts/kafka-local start

kafka-stop:
	scripts/kafka-local stop

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
