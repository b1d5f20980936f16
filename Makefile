# NightGrade developer entry points. A fresh machine needs only `make demo` and `make test`:
# each target creates .venv and installs what it needs itself, one progress line per step.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The runtime (what `make demo` needs) and, on top of it, the development extras (training, sample
# data, farm backends, pytest) that `make test` and `make setup` need; `make farm` adds only the farm ones.
BASE_STAMP := $(VENV)/.nightgrade-base
STAMP      := $(VENV)/.nightgrade-installed
FARM_STAMP := $(VENV)/.nightgrade-farm

.PHONY: setup demo test farm bench clean build-deps bundle install-ofx

setup: $(STAMP)

$(BASE_STAMP): pyproject.toml scripts/setup-venv.sh
	scripts/setup-venv.sh $(PYTHON) $(VENV)
	touch $(BASE_STAMP)

$(STAMP): $(BASE_STAMP)
	scripts/setup-venv.sh $(PYTHON) $(VENV) dev
	touch $(STAMP)

$(FARM_STAMP): $(BASE_STAMP)
	scripts/setup-venv.sh $(PYTHON) $(VENV) farm,ray
	touch $(FARM_STAMP)

demo: $(BASE_STAMP)
	$(VENV)/bin/nightgrade demo

# Farm workers and submitters: the OpenJD CLI, OpenCue's PyOutline and Ray (docs/farm.md).
farm: $(FARM_STAMP)

# The OFX bridge tests build the C++ plugin: build-deps apt-installs its packages when missing.
test: $(STAMP) build-deps
	$(PY) -m pytest -q

build-deps:
	scripts/install-build-deps.sh

# The portable NightGrade.ofx.bundle under build/ofx-portable (glibc 2.28, static libzmq/libsodium;
# docs/ofx-hosts.md), and its installation where OpenFX hosts look. The first run fetches Debian's
# libzmq/libsodium sources and builds them (about 5 minutes on 2 cores); later runs reuse that cache.
bundle: $(STAMP) build-deps
	PYTHON=$(abspath $(PY)) packaging/ofx/make-bundle.sh

# Into the first folder of $$OFX_PLUGIN_PATH, else /usr/OFX/Plugins as root, else the per-user folder.
install-ofx: bundle
	packaging/ofx/install.sh

# Benchmarks are not part of CI; each replaces its own section of docs/benchmarks.md.
# On a 2-core CPU the whole set takes about an hour; run one with e.g. `.venv/bin/python bench/daemon.py --write-docs`.
bench: $(STAMP) build-deps
	scripts/setup-venv.sh $(PYTHON) $(VENV) bench
	$(PY) bench/tiles.py
	$(PY) bench/tile_edges.py --write-docs
	$(PY) bench/motion.py
	$(PY) bench/temporal.py --uhd
	$(PY) bench/batching.py --write-docs
	$(PY) bench/daemon.py --write-docs
	$(PY) bench/preview.py --write-docs
	$(PY) bench/farm.py --write-docs
	$(PY) bench/ofx_proxy.py --write-docs

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache out
