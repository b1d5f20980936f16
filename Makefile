# NightGrade developer entry points. A fresh machine needs only `make demo` and `make test`:
# each target creates .venv and installs what it needs itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.nightgrade-installed

.PHONY: setup demo test bench clean build-deps bundle install-ofx

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

# The OFX bridge tests build the C++ plugin: build-deps apt-installs its packages when missing.
test: $(STAMP) build-deps
	$(PY) -m pytest -q

build-deps:
	scripts/install-build-deps.sh

# NightGrade.ofx.bundle under build/ofx, and its installation where OpenFX hosts look.
bundle: build-deps
	packaging/ofx/make-bundle.sh

install-ofx: bundle
	packaging/ofx/install.sh

# Benchmarks are not part of CI; each replaces its own section of docs/benchmarks.md.
# On a 2-core CPU the whole set takes about an hour; run one with e.g. `.venv/bin/python bench/daemon.py --write-docs`.
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/tiles.py
	$(PY) bench/tile_edges.py --write-docs
	$(PY) bench/motion.py
	$(PY) bench/temporal.py --uhd
	$(PY) bench/batching.py --write-docs
	$(PY) bench/daemon.py --write-docs
	$(PY) bench/preview.py --write-docs
	$(PY) bench/farm.py --write-docs

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache out
