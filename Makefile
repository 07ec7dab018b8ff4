# `make train` and `make test` work on a fresh machine: they build .venv from requirements.lock.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
DATASET ?= mnist_5k
UI_PORT ?= 5000
# `mlflow run --env-manager local` runs `python` from PATH: make it the venv's.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install train test test-fast lint format params bench findings ui docs clean delete-runs

install: $(STAMP)

# pip's output goes to $(VENV)/install.log and is shown only when a step fails.
$(STAMP): requirements.lock pyproject.toml
	@echo "installing into $(VENV) from requirements.lock (about a minute; log: $(VENV)/install.log)"
	@python3 -m venv $(VENV)
	@( $(PYTHON) -m pip install --upgrade pip \
	  && $(PYTHON) -m pip install -r requirements.lock \
	  && $(PYTHON) -m pip install --no-deps -e . ) > $(VENV)/install.log 2>&1 \
	  || { cat $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

# The run lands in the experiment the README promises, dropout-mlp-<dataset>, created first by
# the pipeline: its artifacts beside the store (mlflow run would put them in ./mlruns/<id>).
train: install  ## the train entry point on defaults; e.g. make train DATASET=fashion_mnist ARGS="-P epochs=20"
	$(PYTHON) -m pipeline.create_experiment dropout-mlp-$(DATASET)
	mlflow run . -e train --env-manager local --experiment-name dropout-mlp-$(DATASET) \
	  -P dataset=$(DATASET) $(ARGS)

test: install  ## the full suite (CI's command)
	$(PYTHON) -m pytest -m "not slow" $(ARGS)

test-fast: install  ## no subprocess, server or training beyond a few epochs on tiny data: < 2 min
	$(PYTHON) -m pytest -m "fast and not slow" $(ARGS)

bench: install  ## timings and slow acceptance checks; writes bench/results.{md,json} and bench/population_results.json
	$(PYTHON) -m pytest -m slow bench/ $(ARGS)
	$(PYTHON) bench/bench.py
	$(PYTHON) bench/bench_population.py  # keras and population per model-epoch, K = 1, 10, 100
	$(PYTHON) bench/bench_logging.py  # time inside MLflow in a 100-run study

findings: install  ## the two fashion_mnist studies (5 seeds x 10 epochs) and the seeds=auto regime map with the effect along 1..100 epochs (hours on 2 cores: ARGS="--train-sizes 1000,5000 --grid-epochs 10,25 --max-seeds 20" for less); writes README's Findings
	$(PYTHON) bench/findings.py $(ARGS)

ui: install  ## mlflow ui on the default local store; e.g. make ui UI_PORT=5001
	@echo "MLflow UI: http://127.0.0.1:$(UI_PORT)  (Ctrl-C stops it)"
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port $(UI_PORT)

docs: install  ## the README's pictures of mlflow ui (docs/*.png) from fresh runs, in headless Chromium
	$(PYTHON) docs/screenshots.py $(ARGS)

params: install  ## writes MLproject and README's parameter tables from pipeline/config/entry_points.py
	$(PYTHON) -m pipeline.project_files

lint: install  ## ruff, and the layers contract of pyproject.toml (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:  ## what make built; never the runs (mlflow.db, mlruns/, its journal): see delete-runs
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

delete-runs:  ## deletes every run of the local store: mlflow.db, mlruns/, mlartifacts/, its journal
	rm -rf mlflow.db mlflow.db.lock mlflow.db.optuna.journal mlruns mlartifacts
