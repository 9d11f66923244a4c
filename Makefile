# The two commands of the README are `make book` and `make test`; both set up .venv/ first.
.DEFAULT_GOAL := help
.PHONY: help setup test book lint format chapter lock clean gpu-check

VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= default
NB ?=

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## create/update .venv from requirements-lock.txt (no-op when up to date)
	@bash scripts/setup.sh

test:  ## set up (incl. chromium for the browser test) and run the whole test suite
	@bash scripts/setup.sh --browser
	$(PY) -m pytest

book: setup  ## execute the chapters at PROFILE (default) and build _build/html
	$(PY) book/_ext/bookbuild.py build --profile $(PROFILE)

chapter: setup  ## re-execute one chapter: make chapter NB=04 PROFILE=paper
	@test -n "$(NB)" || { echo "usage: make chapter NB=04 [PROFILE=paper]" >&2; exit 2; }
	$(PY) book/_ext/bookbuild.py run $(NB) --profile $(PROFILE)

lint: setup  ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup  ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

gpu-check: setup  ## CUDA-only tests, every chapter at paper, the benchmarks (JSON: _build/gpu_check.json)
	$(PY) scripts/gpu_check.py

lock: setup  ## rewrite environment.yml from requirements-lock.txt
	$(PY) scripts/lock.py

clean:  ## remove build outputs (keeps .venv)
	rm -rf _build book/reproducibility.md notebooks/*.ipynb notebooks/.ipynb_checkpoints
