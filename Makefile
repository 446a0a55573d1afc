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

# Four at a time on any machine: most tests wait on sockets and timers, not the CPU.
test: $(STAMP)
	$(PY) -m pytest -q -n 4 --dist loadfile

# The web process and a worker, stopped together on Ctrl-C or SIGTERM.
run: $(STAMP)
	$(PY) -m bot run

lint: $(STAMP)
	$(VENV)/bin/ruff check bot tests
	$(VENV)/bin/ruff format --check bot tests

sandbox: $(STAMP)
	$(PY) -m bot sandbox --provider intron

# Six benchmarks (five beside a baseline, then the flood); prints one Markdown table (bench/README.md).
# BENCH_ARGS="--scale 0.05 --only 1,2" for a quick partial run.
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
