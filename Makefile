# Unmasked: `make lab` to learn, `make test` to check everything. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Use the active virtual or conda environment; otherwise create and use .venv.
ifneq ($(VIRTUAL_ENV),)
ENV_DIR := $(VIRTUAL_ENV)
else ifneq ($(CONDA_PREFIX),)
ENV_DIR := $(CONDA_PREFIX)
else
ENV_DIR := .venv
endif
PY := $(ENV_DIR)/bin/python
STAMP := $(ENV_DIR)/.unmasked-setup-stamp

# Without an NVIDIA GPU, cap torch below 2.14 so pip takes the CPU build (see constraints.txt).
ifeq ($(shell command -v nvidia-smi 2>/dev/null),)
CONSTRAINT := -c constraints.txt
endif
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

LAB ?=
SUBMISSIONS ?=
GRADES ?= grades
JOBS ?= 2
SITE ?= site
DEFAULTS ?=
FULL_TIMEOUT ?= 600
FULL_OUT ?= data/bench/notebooks_defaults.json
# make test spreads the test files over this many pytest-xdist workers (0: one process, in order)
TEST_JOBS ?= 2

.PHONY: help setup lab lint test test-full test-browser site labs data checkpoint checkpoint-ar checkpoint-spans twin-sitting grade bench bench-decode check-env clean

help:
	@echo "make lab         set up, then open JupyterLab at the course"
	@echo "make test        set up, lint, then run every test and execute every notebook (fast mode)"
	@echo "                 (each test file on one of TEST_JOBS=$(TEST_JOBS) workers; TEST_JOBS=0 runs them in one process)"
	@echo "make test-full   run every lecture and worked lab at its default knobs (what a learner runs);"
	@echo "                 fails on any error or a notebook over $(FULL_TIMEOUT) s; seconds to $(FULL_OUT)"
	@echo "make lint        ruff check and ruff format --check (utils, tests, benchmarks, notebooks)"
	@echo "make test-browser  only the browser tests (real JupyterLab in Chromium)"
	@echo "make site        build site/: the executed lectures as static HTML that reads offline"
	@echo "                 (math and diagrams drawn by MathJax and Mermaid from npm, installed by make setup)"
	@echo "                 (fast mode; DEFAULTS=1 runs them at their default knobs; SITE=dir to write elsewhere)"
	@echo "                 (EXECUTED=build/test-full exports what make test-full ran, without running them again)"
	@echo "make labs        regenerate labs/ from solutions/"
	@echo "make data        regenerate data/ with the project's own scripts"
	@echo "make checkpoint  retrain the shipped toy model checkpoint"
	@echo "make checkpoint-ar  train its autoregressive twin (same examples, batches and size)"
	@echo "make checkpoint-spans  continue both on records and span filling (data/checkpoints/spans/)"
	@echo "make twin-sitting  one more sitting ($(SITTING) s) of a twin run saved in data/runs/ (the same-budget"
	@echo "                 run finished in 9 sittings; data/bench/twin_budget_run.json); commit the run file after each;"
	@echo "                 its progress record goes to PROGRESS=$(PROGRESS)"
	@echo "                 SITTING_FLAGS=--float32-sitting on a CPU without avx512_bf16 or AMX (bf16 is ~10x slower there)"
	@echo "make grade LAB=labs/lab01_tokens.ipynb SUBMISSIONS=dir   grade a class's submissions"
	@echo "make bench       run the benchmarks and print measured figures"
	@echo "make bench-decode  race diffusion against its autoregressive twin (tokens/s), JSON to data/bench/"

$(STAMP): pyproject.toml constraints.txt
	@if [ ! -x "$(PY)" ]; then echo "creating $(ENV_DIR)"; python3 -m venv "$(ENV_DIR)"; fi
	"$(PY)" -m pip install $(CONSTRAINT) -e ".[dev]"
	@touch "$@"

# make site ships MathJax and Mermaid inside site/ (no CDN), from the npm packages that package.json
# pins; npm ci installs them into node_modules/ once, at setup, and never at build time.
NPM := $(shell command -v npm 2>/dev/null)
NODE_STAMP := node_modules/.unmasked-setup-stamp

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	@touch "$@"

setup: $(STAMP) $(if $(NPM),$(NODE_STAMP),)
	$(if $(NPM),,@echo "setup: no npm, so make site has no MathJax or Mermaid to ship: install Node.js and npm (apt-get install -y nodejs npm), then make setup again")

check-env: setup
	"$(PY)" -m unmasked.check_env

lab: setup
	"$(ENV_DIR)/bin/jupyter" lab $(ROOT_FLAG) --ServerApp.root_dir="$(CURDIR)" \
	  --LabApp.default_url=/lab/tree/notebooks/00_welcome.ipynb

lint: setup
	"$(ENV_DIR)/bin/ruff" check .
	"$(ENV_DIR)/bin/ruff" format --check .

test: lint
	UNMASKED_FAST=1 "$(PY)" -m pytest -n $(TEST_JOBS) --dist loadfile

test-full: setup
	"$(PY)" benchmarks/bench_notebooks.py notebooks solutions --timeout $(FULL_TIMEOUT) \
	  --keep build/test-full --out "$(FULL_OUT)"

test-browser: setup
	UNMASKED_FAST=1 "$(PY)" -m pytest tests/test_browser.py -m browser

site: setup
	"$(PY)" -m unmasked.site --out "$(SITE)" $(if $(DEFAULTS),--defaults,) \
	  $(if $(EXECUTED),--executed "$(EXECUTED)",)

labs: setup
	"$(PY)" -m unmasked.labs

data: setup
	"$(PY)" -m unmasked.sessions --n 250 --seed 0 --out data/sessions

checkpoint: setup
	"$(PY)" -m unmasked.train --out data/checkpoints

checkpoint-ar: setup
	"$(PY)" -m unmasked.train --arch autoregressive --out data/checkpoints

# The pair chapter 04 writes free text with: each shipped model continued for 45 minutes on one CPU
# thread on records and hidden spans of session text, the span rows' loss weighed 0.01.
SPANS_ARGS := --span-task --span-weight 0.01 --threads 1 --batch-size 16 --steps 1000000 \
  --time-budget 2700 --lr 1e-4 --min-lr 1e-5 --warmup 100 --eval-every 600 --quick-n 64 --eval-n 500 \
  --save-every 600 --out data/checkpoints/spans

checkpoint-spans: setup
	"$(PY)" -m unmasked.train --init-from data/checkpoints/diffusion.pt --sampler-frac 0.5 \
	  --methods adaptive:0.9 $(SPANS_ARGS)
	"$(PY)" -m unmasked.train --arch autoregressive --init-from data/checkpoints/autoregressive.pt \
	  $(SPANS_ARGS)

# The twin's same-budget run (issue #19) went on one sitting at a time, nine in all (its third stage
# in data/checkpoints/autoregressive.md). Its saved run (weights, optimizer, place in the batch order)
# was committed in data/runs/ after every sitting, as a machine here does not outlive a session; the
# progress record is rewritten from it.
SITTING ?= 7000
SITTING_FLAGS ?=
# where each sitting rewrites the run's progress record: beside the run by default, so that a new
# run never overwrites the finished one's data/bench/twin_budget_run.json
PROGRESS ?= data/runs/autoregressive.progress.json
twin-sitting: setup
	"$(PY)" -m unmasked.train --resume --arch autoregressive --out data/runs --threads 2 \
	  --stop-after $(SITTING) $(SITTING_FLAGS)
	"$(PY)" -m unmasked.train --progress "$(PROGRESS)" --arch autoregressive \
	  --out data/runs

grade: setup
	@if [ -z "$(LAB)" ] || [ -z "$(SUBMISSIONS)" ]; then \
	  echo "usage: make grade LAB=labs/lab01_tokens.ipynb SUBMISSIONS=path/to/submissions [GRADES=grades] [JOBS=2]"; exit 2; fi
	"$(PY)" -m unmasked.grading "$(LAB)" "$(SUBMISSIONS)" --out "$(GRADES)" -j $(JOBS)

bench: setup
	@for script in benchmarks/*.py; do echo "== $$script"; "$(PY)" "$$script" || exit 1; done

bench-decode: setup
	"$(PY)" -m unmasked.bench decode --warmup-batch 1 --budget-s 20 --threads 1

clean:
	rm -rf .venv build site node_modules *.egg-info utils/*.egg-info .pytest_cache .hypothesis
