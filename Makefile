# `make train` and `make test` work on a fresh machine: they build .venv from requirements.lock.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
UI_PORT ?= 5000
# `mlflow run --env-manager local` runs `python` from PATH: make it the venv's.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install train test lint format bench findings ui docs clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.lock
	$(PYTHON) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

train: install  ## the train entry point on defaults; e.g. make train ARGS="-P dataset=fashion_mnist"
	mlflow run . -e train --env-manager local $(ARGS)

test: install
	$(PYTHON) -m pytest -m "not slow" $(ARGS)

bench: install  ## timings and slow acceptance checks; writes bench/results.{md,json}
	$(PYTHON) -m pytest -m slow bench/ $(ARGS)
	$(PYTHON) bench/bench.py

findings: install  ## the two fashion_mnist studies (5 seeds x 10 epochs); writes README's Findings
	$(PYTHON) bench/findings.py $(ARGS)

ui: install  ## mlflow ui on the default local store; e.g. make ui UI_PORT=5001
	@echo "MLflow UI: http://127.0.0.1:$(UI_PORT)  (Ctrl-C stops it)"
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port $(UI_PORT)

docs: install  ## the README's pictures of mlflow ui (docs/*.png) from fresh runs, in headless Chromium
	$(PYTHON) docs/screenshots.py $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) mlruns mlartifacts mlflow.db .pytest_cache
