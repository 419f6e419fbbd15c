# The two set-up commands: `make run` (service + sample corpus) and `make test`.
# Both create .venv/ and install everything on first use; later runs reuse it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
export RAGOPS_ADMIN_KEY ?= dev-key-change-me
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test install lint bench clean browser

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# torch is pinned in constraints.txt: the CPU wheel on disk, not gigabytes of CUDA.
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	# Packages whose declared deps would break the pinned set (see the file).
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ragops ingest samples/corpus --kb sample
	@echo ""
	@echo "ragops is starting on http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/docs)"
	@echo "API key: $$RAGOPS_ADMIN_KEY"
	@echo "Try:  curl -s -X POST http://$(HOST):$(PORT)/v1/kbs/sample/retrieve \\"
	@echo "        -H 'Authorization: Bearer $$RAGOPS_ADMIN_KEY' -H 'Content-Type: application/json' \\"
	@echo "        -d '{\"query\": \"How do bees tell each other where flowers are?\", \"top_k\": 3}'"
	@echo "  or:  $(BIN)/ragops query \"What does Black play in the Sicilian Defence?\" --kb sample"
	@echo ""
	$(BIN)/ragops serve --host $(HOST) --port $(PORT)

test: $(STAMP) browser
	$(BIN)/ruff check .
	# Imports point down the layers, with no cycles (pyproject.toml [tool.importlinter]).
	$(BIN)/lint-imports
	# First, alone on a quiet machine, the tests that measure latency under load; then
	# the rest in two processes (a test module stays in one: its fixtures are shared),
	# listing the 30 slowest steps.
	# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
	sync
	$(BIN)/python -m pytest -q -m serial; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no serial tests" >&2; exit 1; fi; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not serial" --durations=30; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# Headless Chromium for the eval report browser test (Debian's package; needs root).
# Best effort: without it that test skips with the reason, and fails under CI=true.
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
	  || echo "chromium could not be installed: the report browser test will skip" >&2

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

clean:
	rm -rf $(VENV) data
