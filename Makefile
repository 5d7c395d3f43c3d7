# The two commands: `make demo` (the main job) and `make test` (the whole suite). Both bootstrap
# the node first (scripts/bootstrap.sh: idempotent, seconds on a second run).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
AUTOTUNE := $(VENV)/bin/autotune
LINT_DIRS := autotune envs agents workloads
PYTEST_ARGS ?=
# Python's bytecode cache stays on for what make runs, even where the environment turns it off
# (PYTHONDONTWRITEBYTECODE=1, as this project's CI machines have it): the suite starts hundreds
# of Python processes, and without __pycache__ each compiles every module it imports anew.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test check lint format bootstrap clean typecheck-tree test-scx workloads

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	@scripts/demo.sh

test: bootstrap lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The daily loop (at most 90 s on 2 cores): lint, and every test that boots no VM and runs no
# long real job (those are marked slow or vm), on one pytest-xdist worker per core (most of a
# test's time is spent waiting on real processes). `make test` runs them all, one at a time, as
# CI does. CHECK_WORKERS=0 runs the tier in one process.
CHECK_WORKERS ?= auto
check: bootstrap lint
	$(PY) -m pytest -q -n $(CHECK_WORKERS) -m "not slow and not vm" $(PYTEST_ARGS)

# Our sched_ext scheduler, attached in a VM booting a sched_ext kernel under qemu (about 40 s once
# the kernel is cached), then the cgroup v2 weights backend in the same kernel, whose v2 hierarchy
# has the cpu controller this node's lacks (scx/vm/cgroup2.sh, about 25 s); `make test` runs
# them too, through tests/scx/test_scx_vm.py and tests/actuators/test_cgroup2_vm.py.
test-scx: bootstrap
	scx/vm/run.sh
	scx/vm/cgroup2.sh

# The bundled recordings (envs/workloads/*.parquet), regenerated on this node (root, ~10 min).
workloads: bootstrap
	workloads/record_all.sh

SHELL_SCRIPTS = $(wildcard scripts/*.sh scx/*.sh scx/vm/*.sh workloads/*.sh)

lint: bootstrap typecheck-tree
	shellcheck $(SHELL_SCRIPTS)
	$(VENV)/bin/ruff check $(LINT_DIRS) tests bench
	$(VENV)/bin/ruff format --check $(LINT_DIRS) tests bench
	cd .typecheck && ../$(VENV)/bin/mypy --config-file ../pyproject.toml --cache-dir ../.mypy_cache -p autotune

format: bootstrap
	$(VENV)/bin/ruff format $(LINT_DIRS) tests bench
	$(VENV)/bin/ruff check --fix $(LINT_DIRS) tests bench

# mypy cannot follow the import hook of an editable install that maps envs/ and agents/ into the
# autotune namespace, so it checks a tree of links laid out as the installed package is.
typecheck-tree:
	@rm -rf .typecheck && mkdir -p .typecheck/autotune
	@for f in autotune/*; do ln -s "../../$$f" ".typecheck/$$f"; done
	@ln -s ../../envs .typecheck/autotune/envs && ln -s ../../agents .typecheck/autotune/agents \
		&& ln -s ../../bpf .typecheck/autotune/bpf

clean:
	rm -rf .typecheck .mypy_cache .ruff_cache .pytest_cache build *.egg-info
