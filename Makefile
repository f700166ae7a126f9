# The README's two commands:
#   make demo   - create .venv, install, run the main job
#   make test   - create .venv, install with test extras, run every check
# `make help` lists every target. A target's help is the `## ` comment on its line.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help demo test lint typecheck unit ts notebooks vectors bench paper lab docs docs-serve clean

help: ## list the targets
	@echo "usage: make TARGET   (everything installs into $(VENV))"
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-11s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The demo writes an HTML report with altair charts: it needs the lab extra.
$(VENV)/.base: $(BIN)/python pyproject.toml
	@echo "installing into $(VENV) (first run takes a few minutes)..."
	$(BIN)/python -m pip install -e '.[lab]'
	touch $@

$(VENV)/.test: $(BIN)/python pyproject.toml
	@echo "installing into $(VENV) with the test tools (first run takes a few minutes)..."
	$(BIN)/python -m pip install -e '.[test]'
	touch $@ $(VENV)/.base $(VENV)/.docs

$(VENV)/.lab: $(VENV)/.base pyproject.toml
	@echo "installing JupyterLab into $(VENV) (first run takes a few minutes)..."
	$(BIN)/python -m pip install -e '.[notebooks]'
	touch $@

$(VENV)/.docs: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

demo: $(VENV)/.base ## run the takedown demo on localhost (report in railgun-demo-report/)
	$(BIN)/railgun-ref demo

test: $(VENV)/.test lint typecheck unit ts notebooks ## every check: lint, typecheck, unit, ts, notebooks, paper
	$(MAKE) paper QUICK=1

lint: $(VENV)/.test ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.test ## mypy --strict railgun_ref
	$(BIN)/mypy --strict railgun_ref tests/contract_types.py

# Two workers: every test that starts sockets, processes or labs runs on one of them, in
# turn (tests/conftest.py); the pure tests run on the other. JOBS=0 runs it all serially.
JOBS ?= 2
unit: $(VENV)/.test ## pytest tests (unit, property, conformance, sim, integration, lab, docs)
	$(BIN)/python -m pytest --durations=25 $(if $(filter-out 0,$(JOBS)),-n $(JOBS) --dist loadgroup,) tests

ts: ## the TypeScript consumer of the conformance vectors (needs node and npm)
	cd conformance/typescript && npm ci --no-audit --no-fund && npm test

notebooks: $(VENV)/.test ## run every notebook and compare it with its stored outputs (nbval)
	$(BIN)/python -m pytest --nbval notebooks --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider

vectors: $(VENV)/.test ## check that the committed conformance vectors are current
	$(BIN)/railgun-ref conformance vectors --check

bench: $(VENV)/.base ## the wire codec benchmark, as JSON
	$(BIN)/railgun-ref bench wire --json

# QUICK=1: every figure and table at small sizes into build/paper-quick (as CI runs it),
# then a check that the committed paper/ is complete and fresh; without it, the full
# sweeps (tens of minutes on two cores) rewrite paper/figures, paper/tables, paper.md.
paper: $(VENV)/.test ## regenerate paper/ figures and tables (QUICK=1: small sizes + check; ONLY=NAME: one item)
	$(BIN)/python -m railgun_ref.sweep.paper $(if $(QUICK),--quick --out build/paper-quick,) $(if $(ONLY),--only $(ONLY),)

# JupyterLab refuses to start as root unless told; containers often run as root.
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(VENV)/.lab ## install JupyterLab and open the notebooks
	$(BIN)/jupyter lab $(LAB_ROOT) notebooks/

docs: $(VENV)/.docs ## build the documentation site into site/ (mkdocs build --strict)
	$(BIN)/mkdocs build --strict

docs-serve: $(VENV)/.docs ## serve the documentation on http://127.0.0.1:8000, rebuilt on change
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

clean: ## delete .venv, site/ and the tool caches
	rm -rf $(VENV) site .mypy_cache .pytest_cache .ruff_cache
