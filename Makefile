# Everything runs from a local virtual environment built from uv.lock.
# Needs only python3 (>= 3.11) and make: uv itself is pip-installed into .tools/.
PYTHON ?= python3
UV_VERSION ?= 0.13.9
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help install demo test test-pg lint typecheck format bench clean browser

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# --compile-bytecode: every `digest` start reads .pyc instead of compiling ~650 modules (about
# 1 s of CPU per start where PYTHONDONTWRITEBYTECODE is set, as in some sandboxes and containers).
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced ## create .venv from uv.lock

# The demo signs its unsubscribe links with a random secret kept in var/ (never committed),
# unless DIGEST_SECRET is already set.
DEMO := DIGEST_SECRET="$${DIGEST_SECRET:-$$(cat var/demo.secret)}" $(BIN)/digest --config config/demo.toml

demo: install ## build a digest from the example feeds into outbox/
	@mkdir -p var
	@test -s var/demo.secret || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(32))" > var/demo.secret
	@$(DEMO) subscribers import examples/subscribers.csv
	@$(DEMO) run --once

# The checks live in .pre-commit-config.yaml (local hooks run from .venv): ruff, ruff format
# --check, mypy --strict src, codespell, validate-pyproject. `make lint` and CI run them all;
# `.venv/bin/pre-commit install` runs them on each commit.
lint: install ## every check of .pre-commit-config.yaml (ruff, format, mypy, codespell, pyproject)
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

typecheck: install ## mypy --strict on src (also part of lint)
	$(BIN)/pre-commit run mypy --all-files

# The browser tests drive Debian's chromium through Playwright (never `playwright install`).
CHROMIUM := /usr/bin/chromium

browser: ## install Debian's chromium for the browser tests when missing (apt-get, as root)
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "note: $(CHROMIUM) missing and not root: browser tests will be skipped" \
	      "(sudo apt-get install chromium); under CI=true they fail instead"; \
	  fi; \
	fi

# Tests that read the shared test data (feed corpus, seed article: ../shared beside the checkout,
# or $DIGEST_SHARED) are skipped without it; under CI=true they fail instead. Optional otherwise.
test: lint browser ## lint (type-check included) and run the test suite (slowest ten listed)
	$(BIN)/pytest --durations=10

# The same suite again with every test database on a private PostgreSQL cluster (Debian's
# postgresql; installed when missing and root). .ci/with-postgres starts and removes it.
test-pg: test ## `make test`, then the suite on PostgreSQL
	.ci/with-postgres $(BIN)/pytest

format: install ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# Quick mode: small sizes, so the figures say "it runs and roughly how fast", in a few minutes on
# 2 cores. The recorded figures (docs/benchmarks.md) come from each script's default sizes.
BENCHMARKS := topics summarize render fetch http_clients fetch_scale send memory_cycles kill_send soak prune

bench: install ## run every benchmark in quick mode and print its figures
	@for b in $(BENCHMARKS); do \
	  echo "== benchmarks/$$b.py --quick"; \
	  $(BIN)/python benchmarks/$$b.py --quick || exit 1; \
	  echo; \
	done
	@echo "== benchmarks/scale_out.py --quick (on a private PostgreSQL)"
	@.ci/with-postgres $(BIN)/python benchmarks/scale_out.py --quick

clean: ## remove generated state (keeps .venv)
	rm -rf outbox var .pytest_cache .mypy_cache .ruff_cache
