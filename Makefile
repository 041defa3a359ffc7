# leadlift: `make run` runs the whole pipeline, `make test` the test suite. Both set up .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONHASHSEED := 0

.PHONY: run test bench venv clean example-bank

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]' 2>&1 | grep -v 'is ignored: it is neither' || true
	$(PY) -c "import features, models, pipelines, lightgbm, duckdb, mlflow, dvc, shap, pandera" 
	touch $(STAMP)

venv: $(STAMP)

run: venv
	$(PY) -m pipelines.run

test: venv
	$(PY) -m pytest

example-bank: venv
	$(PY) -m pipelines.example examples/bank-marketing

bench: venv
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) data/raw data/validated data/snapshots.parquet reports/*
