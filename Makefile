# Two commands on a fresh machine: `make demo` (set up + run the default job), `make test`.
PYTHON ?= python3
# two pytest workers, one test file each at a time (a file's tests share its fixtures):
# most tests run one single-threaded subprocess, so two at once fill the two cores
PYTEST_ARGS ?= -m "not slow" -n 2 --dist loadfile
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench

$(BIN)/gridfactor: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel on disk (any other version pulls a CUDA build)
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev,peers]"
	touch $(BIN)/gridfactor

install: $(BIN)/gridfactor

demo: install
	$(BIN)/gridfactor compare --preset demo --out runs/demo

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -x -q --durations=15 $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/mi.py
