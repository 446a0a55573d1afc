# Everything runs inside .venv, built from pyproject.toml on first use, at the exact
# versions of requirements.lock (what the Docker image installs) and requirements-dev.lock
# (the same, plus the dev tools); `make lock` writes both.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCKS  := -c requirements.lock -c requirements-dev.lock

.PHONY: test run lint sandbox bench clean lock

$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(LOCKS) --upgrade pip
	$(PY) -m pip install --quiet $(LOCKS) -e '.[dev]'
	touch $(STAMP)

# Rewrites both lock files from pyproject.toml, for Python 3.11 on Linux (the image's),
# whatever this machine runs. Pins are kept unless pyproject.toml asks otherwise;
# `make lock LOCK_ARGS=--upgrade` moves every one to the newest release allowed.
UV        := $(VENV)/lock-tools/bin/uv
LOCK_WITH := --python-version 3.11 --python-platform linux --custom-compile-command 'make lock'
lock:
	$(PYTHON) -m venv $(VENV)/lock-tools
	$(VENV)/lock-tools/bin/python -m pip install --quiet uv==0.13.9
	$(UV) pip compile --quiet pyproject.toml $(LOCK_WITH) $(LOCK_ARGS) -o requirements.lock
	$(UV) pip compile --quiet pyproject.toml --extra dev -c requirements.lock $(LOCK_WITH) $(LOCK_ARGS) \
		-o requirements-dev.lock

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
