# Sitewright: `make demo` runs one job end to end, `make up` runs the stack, `make test` runs the tests.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: setup up demo test kcat clean

setup: .venv/.synced

# uv comes from PyPI when missing; the workspace installs from uv.lock.
.venv/.synced: pyproject.toml uv.lock libs/*/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --all-packages --frozen
	@touch $@

up: setup
	$(UV) run sitewright-stack up

demo: setup
	$(UV) run sitewright-stack demo

test: setup
	$(UV) run pytest $(PYTEST_ARGS)

clean:
	rm -rf .sitewright .venv
