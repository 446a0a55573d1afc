# Everything runs inside .venv, built from pyproject.toml on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test run lint sandbox bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

run: $(STAMP)
	$(PY) -m bot serve

lint: $(STAMP)
	$(VENV)/bin/ruff check bot tests
	$(VENV)/bin/ruff format --check bot tests

sandbox: $(STAMP)
	$(PY) -m bot sandbox

# Five benchmarks, each beside its baseline; prints one Markdown table (bench/README.md).
# BENCH_ARGS="--scale 0.05 --only 1,2" for a quick partial run.
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
