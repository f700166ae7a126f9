# The README's two commands:
#   make demo   - create .venv, install, run the main job
#   make test   - create .venv, install with test extras, run every check
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit notebooks vectors bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The demo writes an HTML report with altair charts: it needs the lab extra.
$(VENV)/.base: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[lab]'
	touch $@

$(VENV)/.test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.base

demo: $(VENV)/.base
	$(BIN)/railgun-ref demo

test: $(VENV)/.test lint typecheck unit notebooks

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.test
	$(BIN)/mypy --strict railgun_ref

unit: $(VENV)/.test
	$(BIN)/python -m pytest tests

notebooks: $(VENV)/.test
	$(BIN)/python -m pytest --nbval notebooks --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider

vectors: $(VENV)/.test
	$(BIN)/railgun-ref conformance vectors --check

bench: $(VENV)/.base
	$(BIN)/railgun-ref bench wire --json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
