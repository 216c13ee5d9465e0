# The two commands: `make up` runs the local platform, `make test` runs every test.
VENV ?= .venv
PY   := $(VENV)/bin/python

.PHONY: setup up down test check toolchain clean-state image

setup: $(VENV)/.installed toolchain  ## venv + pinned toolchain (idempotent, cached)

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

toolchain: $(VENV)/.installed
	$(VENV)/bin/yunshang dev setup

up: setup
	$(VENV)/bin/yunshang dev up

down:
	$(VENV)/bin/yunshang dev down

# the operator's image as an OCI archive (dist/operator-<version>.oci.tar), from Debian's packages
image: $(VENV)/.installed
	$(VENV)/bin/yunshang dev image

# tests stand alone: modules and the tests in each run in a shuffled order, the seed printed in the
# header (`make test SEED=<n>` repeats an order; SEED=none runs them in file order)
SEED ?= 1818
# JOBS workers take whole modules (a module's platform is set up once); JOBS=0: one process
JOBS ?= 2
ORDER = $(if $(filter none,$(SEED)),,-p random_order --random-order-bucket=module --random-order-seed=$(SEED))
test: setup
	$(VENV)/bin/pytest $(ORDER) -n $(JOBS) --dist loadfile --durations=30

# the quick loop: what needs no cluster (unit, property, promtool, generated manifests), under 2 minutes
check: setup
	$(VENV)/bin/pytest $(ORDER) tests/unit
