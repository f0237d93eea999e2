# The two set-up commands of README.md: `make demo` and `make test` (each installs what it needs).
PY ?= python3
RUN ?= runs/demo

.PHONY: setup demo test lint bench

.setup-done: pyproject.toml scripts/setup.sh
	PYTHON=$(PY) ./scripts/setup.sh
	touch $@

setup: .setup-done

demo: .setup-done
	PYTHON=$(PY) ./scripts/demo.sh $(RUN)

test: .setup-done
	PYTHON=$(PY) ./scripts/lint.sh
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadgroup --durations=25

lint: .setup-done
	PYTHON=$(PY) ./scripts/lint.sh

bench: .setup-done
	$(PY) benchmarks/run_all.py
