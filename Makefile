# borescope: the two commands a fresh clone needs are `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup demo test test-fast lint bench soak proto clean podman-e2e

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## Start the sandbox pod (a shell-less app + the sidecar) and open the TUI.
demo: setup
	$(VENV)/bin/borescope demo

## Lint, type-check and run every test (the sandbox tests need root).
test: setup lint
	$(PY) -m pytest -q -ra

test-fast: setup
	$(PY) -m pytest -q -x -m "not slow and not podman"

lint: setup
	$(VENV)/bin/ruff check agent sidecar tui protos tests benchmarks
	$(VENV)/bin/mypy

## Every benchmark beside its anchor, with ratios.
bench: setup
	$(PY) -m benchmarks.run

## The reliability suite, long: 60 s of load, 10,000 churn cycles, more fuzzing (root).
## (The path makes pytest load tests/reliability/conftest.py, which defines --soak.)
soak: setup
	$(PY) -m pytest -q -ra -m reliability --soak tests/reliability \
		--reliability-report .pytest_cache/reliability-soak.md

## Real containers: build the images (debootstrap base, sidecar, FROM-scratch app),
## run the injected pod with podman kube play and test it (root; .ci/podman-setup.sh).
podman-e2e: setup
	$(PY) -m pytest -q -ra -m podman tests/podman

proto: setup
	$(PY) -m protos.generate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
