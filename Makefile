# NightGrade developer entry points. A fresh machine needs only `make demo` and `make test`:
# each target creates .venv and installs what it needs itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.nightgrade-installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

# torch is installed first, pinned, so that nothing later resolves `torch` to a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/nightgrade demo

test: $(STAMP)
	$(PY) -m pytest -q

# Benchmarks are not part of CI; they append measured numbers to docs/benchmarks.md.
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/tiles.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache out
