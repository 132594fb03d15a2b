# Sitewright: `make demo` runs one job end to end, `make up` runs the stack, `make test` runs the tests,
# `make lint` checks style and types (`make fmt` fixes what it can).
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: setup system up demo lint fmt test test-unit test-faults kcat clean bench bench-crawl bench-sitewright bench-peers bench-tier-a bench-tier-c bench-streams

setup: .venv/.synced system

# Debian packages the tests drive for real: Prometheus (with promtool) and Chromium.
APT_PACKAGES := prometheus chromium
system:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing $$missing (Debian)"; \
	  $$(test $$(id -u) -eq 0 || echo sudo) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$(test $$(id -u) -eq 0 || echo sudo) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# uv comes from PyPI when missing; the workspace installs from uv.lock.
.venv/.synced: pyproject.toml uv.lock libs/*/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --all-packages --frozen
	@touch $@

up: setup
	$(UV) run sitewright-stack up

demo: setup
	$(UV) run sitewright-stack demo

# Ruff's rules and formatting, then mypy: strict on libs/, checked but not strict on every service and tool
# ([tool.ruff] and [tool.mypy] in pyproject.toml). Every check runs; lint fails if any of them did.
# The formatter check names the files only: `make fmt` rewrites them.
lint: .venv/.synced
	@status=0; \
	$(UV) run ruff check . || status=1; \
	$(UV) run ruff format --check --output-format concise . || status=1; \
	$(UV) run mypy libs/*/src || status=1; \
	$(UV) run mypy services/*/src tools/*/src || status=1; \
	exit $$status

# Rewrites files in place: ruff's safe fixes first (they may leave lines to re-wrap), then the formatter.
fmt: .venv/.synced
	$(UV) run ruff check --fix --exit-zero .
	$(UV) run ruff format .

test: setup
	$(UV) run pytest -m "not faults" $(PYTEST_ARGS)

# The pure tests (tests/unit): no broker, no database, no browser; a few seconds.
test-unit: .venv/.synced
	$(UV) run pytest tests/unit $(PYTEST_ARGS)

# The fault scenarios (tests/e2e/test_faults.py): kill -9, failover, DLQ replay, SIGSTOP, broker loss, replay.
test-faults: setup
	$(UV) run pytest -m faults -s $(PYTEST_ARGS)

# Benchmarks (bench/README.md). BENCH_RUNS=1 BENCH_QUICK=1 for a quick check while developing.
# `bench` also runs the crawler-vs-Scrapy benchmark (`bench-crawl`) and the stream fan-out (`bench-streams`).
bench: setup
	$(MAKE) --no-print-directory bench-crawl
	$(MAKE) --no-print-directory bench-streams
	$(MAKE) --no-print-directory bench-sitewright

bench-sitewright: setup
	$(UV) run python -m bench.run

# Sitewright's scenarios 1 and 2, Tier A (no-work stages), Tier C (LLM-bound) and BullMQ, Celery and Dramatiq
# (their noop and llm workloads), interleaved, with the ratios.
bench-peers: setup
	$(UV) run python -m bench.run --peers

# Tier A alone (framework cost: the product's stack with the no-work crawler and generator), no peers.
bench-tier-a: setup
	$(UV) run python -m bench.run --tier-a-only

# Tier C alone (the default stack: real crawler, OpenAI-compatible generator; against the peers' fake servers).
bench-tier-c: setup
	$(UV) run python -m bench.run --tier-c-only

# Sitewright's crawler against Scrapy on the same local fixture site: pages/s and peak memory.
bench-crawl: setup
	$(UV) sync --all-packages --frozen --group bench
	$(UV) run --frozen --group bench python bench/crawl_bench.py $(BENCH_ARGS)

# Job stream fan-out: event produced -> received by 1, 100 and 1,000 clients (p50/p99), JSON under bench/results/.
bench-streams: setup
	$(UV) run python bench/stream_fanout.py

clean:
	rm -rf .sitewright .venv
