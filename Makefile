# The README's two commands are `make dev` (run the whole system on this machine) and `make test` (every check).
# Each installs what it needs on a fresh machine and is quick when already set up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
## A Responses server this project did not write (tests/thirdparty/), in a venv of its own: its dependencies are not
## the Lambda's.
BRIDGE_VENV := .venv-bridge
STAGE ?= dev
## `make dev PORT=8081` when 8080 is taken: the gateway's port (WebSocket, web page, config.json).
PORT ?= 8080
CDK := npx --no-install cdk
PY_SOURCES := infra lambdas shared scripts app.py

.PHONY: dev test lint typecheck unit synth lambda-assets bench deploy browser-deps clean

$(VENV)/.stamp: requirements.txt requirements/runtime.txt requirements/runtime-no-deps.txt requirements/dev.txt requirements/constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt -c requirements/constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

## --no-deps: requirements/bridge.txt pins the bridge and everything it needs, so the install is exactly that list;
## pip check then proves the list complete.
$(BRIDGE_VENV)/.stamp: requirements/bridge.txt
	test -x $(BRIDGE_VENV)/bin/python || $(PYTHON) -m venv $(BRIDGE_VENV)
	$(BRIDGE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/bridge.txt
	$(BRIDGE_VENV)/bin/python -m pip check --disable-pip-version-check
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Headless Chromium from Debian for the web page's browser test (no browser download at install time).
## If it cannot be installed (no apt, no root), the browser tests skip and pytest's summary says why.
browser-deps:
	@command -v chromium >/dev/null || bash scripts/install_chromium.sh || \
		echo "WARNING: could not install Debian's chromium; the browser tests will be skipped" >&2

dev: $(VENV)/.stamp node_modules/.stamp
	$(PY) -m scripts.local_stack --port $(PORT)

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.stamp
	$(VENV)/bin/mypy $(PY_SOURCES)

unit: $(VENV)/.stamp node_modules/.stamp $(BRIDGE_VENV)/.stamp
	$(VENV)/bin/pytest

test: $(VENV)/.stamp node_modules/.stamp browser-deps lint typecheck synth lambda-assets unit

## What CI and `cdk deploy` do: the real CLI synthesizes (bundling the layers, cdk-nag as a validation plugin that
## fails the synth on any unacknowledged finding), then cfn-lint checks the templates (.cfnlintrc.yaml).
synth: $(VENV)/.stamp node_modules/.stamp
	$(CDK) synth --context stage=$(STAGE) --quiet --no-notices
	$(VENV)/bin/cfn-lint

deploy: $(VENV)/.stamp node_modules/.stamp
	$(CDK) deploy --context stage=$(STAGE) --no-notices

## The Lambda assets again, for this machine's architecture with the same pins and bundlers, under the runtime's
## Python (3.13): tests/infra/test_deployed_environment.py runs each function from them. Cached in .build/lambda-host
## by their inputs. CPython 3.13 comes from pyenv (installed there if pyenv is present and lacks it); without either,
## that test skips, and fails under CI.
lambda-assets: $(VENV)/.stamp node_modules/.stamp
	@$(PY) -c "from tests.infra.host_assets import lambda_python; raise SystemExit(lambda_python() is None)" || \
		{ command -v pyenv >/dev/null && pyenv install --skip-existing 3.13; } || \
		echo "WARNING: no CPython 3.13 and no pyenv to install it; the deployed-environment test will skip" >&2
	$(PY) -m tests.infra.host_assets

bench: $(VENV)/.stamp node_modules/.stamp
	$(PY) -m scripts.bench $(ARGS)

clean:
	rm -rf cdk.out .build .local .pytest_cache .mypy_cache .ruff_cache
