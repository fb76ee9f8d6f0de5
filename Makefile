# Bookstore Operator: every developer and user entry point. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := .tools/bin
HELM   ?= $(shell command -v helm 2>/dev/null || echo $(CURDIR)/$(TOOLS)/helm)
export HELM

CHART := charts/bookstore-operator

# The image: IMAGE=registry/repo[:tag]; without a tag (or without IMAGE) hack/image.sh tags it
# by content (git sha, plus -dirty-<hash> for uncommitted changes), so each build rolls the pods.
IMAGE        ?=
KIND_CLUSTER ?= bookstore
export IMAGE KIND_CLUSTER

# The lowest dependency versions pyproject.toml allows, tested once per CI run (test-lowest).
LOWEST_VENV  := .venv-lowest
LOWEST_TESTS := tests/operator/unit tests/operator/runtime/test_lifecycle.py \
	tests/operator/runtime/test_apply.py tests/operator/runtime/test_watches.py \
	tests/services/catalog/test_books_api.py tests/services/catalog/test_search.py \
	tests/services/catalog/test_sqlite_dev_mode.py tests/services/orders/test_orders_api.py

.PHONY: help
help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

.PHONY: install
install: $(BIN)/.installed ## Create .venv and install the project with its test extras

$(HELM):
	hack/install-helm.sh $(TOOLS)

.PHONY: helm
helm: $(HELM) ## Install Helm into .tools/bin when it is not on PATH

.PHONY: promtool
promtool: ## Check for promtool (alerting rule checks), else install Debian's prometheus package (root)
	hack/install-promtool.sh

.PHONY: lint
lint: install ## Lint and check formatting (ruff) and module boundaries (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

.PHONY: format
format: install ## Format the code and apply safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: typecheck
typecheck: install ## Type-check our packages (mypy --strict)
	$(BIN)/mypy

.PHONY: test
test: install helm promtool lint typecheck ## Lint, type-check and run every test but e2e (what CI runs)
	$(BIN)/pytest tests --ignore=tests/e2e -n 2 --dist loadfile
	$(MAKE) scan

$(LOWEST_VENV)/.installed: pyproject.toml constraints/lowest.txt
	rm -rf $(LOWEST_VENV)
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/pip install --quiet --upgrade pip
	$(LOWEST_VENV)/bin/pip install --quiet -c constraints/lowest.txt \
		--build-constraint constraints/lowest.txt -e '.[test]'
	touch $@

.PHONY: test-lowest
test-lowest: $(LOWEST_VENV)/.installed ## Install the lowest allowed dependencies (constraints/lowest.txt) in .venv-lowest and run a subset
	$(LOWEST_VENV)/bin/python hack/check_lowest.py
	$(LOWEST_VENV)/bin/pytest -p no:cacheprovider $(LOWEST_TESTS)

.PHONY: test-fast
test-fast: install ## Run the unit tests only (no database, no emulator, no helm)
	$(BIN)/pytest tests/operator/unit

.PHONY: scan
scan: install helm ## Security-scan the rendered chart and every manifest the operator builds (checkov)
	hack/scan.sh

.PHONY: crds
crds: ## Copy crds/ and the operator's RBAC rules into the chart (the copies must stay byte-identical)
	mkdir -p $(CHART)/crds $(CHART)/files/crds $(CHART)/files/rbac
	cp crds/kopf-peering.yaml $(CHART)/crds/
	find crds -name '*.yaml' ! -name kopf-peering.yaml -exec cp {} $(CHART)/files/crds/ \;
	cp operator/rbac/role.yaml $(CHART)/files/rbac/

.PHONY: docs
docs: install ## Regenerate the README's reference blocks from the CRD
	$(BIN)/python hack/docs.py

.PHONY: dev
dev: install ## Run catalog and orders locally on SQLite with sample books (no Docker, no PostgreSQL)
	$(BIN)/python hack/dev.py

.PHONY: bench
bench: install ## Benchmark the services on PostgreSQL next to a bare-endpoint ceiling
	$(BIN)/python hack/bench.py

.PHONY: image
image: ## Build the image (Docker) as IMAGE, default bookstore:<git sha>[-dirty-<hash>]; none is published
	hack/image.sh build

.PHONY: image-push
image-push: ## Build and push IMAGE=registry/repo[:tag], for any cluster (--set image.repository/tag)
	hack/image.sh push

.PHONY: image-kind
image-kind: ## Build and load the image into the kind cluster KIND_CLUSTER (default bookstore)
	hack/image.sh kind

.PHONY: demo
demo: helm ## On a machine with Docker + kind + kubectl: cluster, image, chart, a bookstore and an order
	hack/demo.sh up

.PHONY: demo-down
demo-down: ## Remove everything `make demo` created
	hack/demo.sh down

.PHONY: e2e
e2e: install helm ## End-to-end tests on the current kubeconfig: builds+loads the image (kind) or takes IMAGE=
	@$(BIN)/python hack/e2e.py

.PHONY: clean
clean: ## Remove the virtualenvs, tools and caches
	rm -rf $(VENV) .venv-scan $(LOWEST_VENV) .tools .pytest_cache .mypy_cache .ruff_cache .hypothesis .dev
