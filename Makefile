# The README's commands. Every target creates .venv and installs on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install broker setup test unit integration fault cluster browser console test-rabbit4 compose-test demo lint format bench bench-deps clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

broker:                 ## RabbitMQ running with its management API (starts/enables what is missing)
	scripts/broker-ready

setup:                  ## what make test needs on the machine: the broker (above), Chromium (apt), PostgreSQL
	scripts/test-setup

test: $(STAMP) setup    ## the whole suite: unit, integration, fault and cluster tests
	$(PY) -m pytest

unit: $(STAMP)          ## fast tests, no broker (the contract suite on the in-memory hub too)
	$(PY) -m pytest tests/unit tests/contract -m "not integration"

integration: $(STAMP) broker ## tests against the real broker (the contract suite's broker half too)
	$(PY) -m pytest tests/integration
	$(PY) -m pytest tests/contract -m integration

fault: $(STAMP) broker ## kills consumers, restarts a private broker node (never the shared one)
	$(PY) -m pytest -m fault

cluster: $(STAMP) broker ## a private 3-node cluster loses nodes (~1 min); skip elsewhere: -m "not cluster"
	$(PY) -m pytest -m cluster

browser: $(STAMP) setup ## the console end to end in Debian's Chromium (installed by scripts/test-setup)
	$(PY) -m pytest -m browser

console: $(STAMP)       ## the web console on http://127.0.0.1:8470/ (HUBBUB_TOPOLOGY or HUBBUB_HUB)
	$(VENV)/bin/hubbub console

# RabbitMQ 4.0.5 beside the machine's broker: scripts/rabbit4 builds a Debian trixie
# chroot once (~45 s, root and debootstrap) and starts a node on its own ports (~5 s).
# Tests marked same_on_every_version (each says why) are left out. RABBIT4_TESTS picks
# the suites (CI leaves out tests/contract: make compose-test runs it on 4.0.5 too).
RABBIT4_TESTS ?= tests/integration tests/contract
test-rabbit4: $(STAMP)  ## the integration and contract suites against RabbitMQ 4.0 (stopped after)
	set -e; trap 'scripts/rabbit4 stop' EXIT; scripts/rabbit4 start; \
	eval "$$(scripts/rabbit4 env)"; \
	$(PY) -m pytest $(RABBIT4_TESTS) \
	  -m "integration and not fault and not cluster and not same_on_every_version"

compose-test: $(STAMP) ## the compose files, image and testcontainers fixture on a private dockerd (~4 min warm)
	VENV=$(VENV) scripts/compose-test $(ARGS)

demo: $(STAMP)          ## the example app end to end
	$(PY) -m example_app.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check hubbub tests example_app bench
	$(VENV)/bin/ruff format --check hubbub tests example_app bench
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format hubbub tests example_app bench
	$(VENV)/bin/ruff check --fix hubbub tests example_app bench

bench: $(STAMP)         ## the performance suite (with the Go baseline when Go is installed)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench

bench-deps:             ## Go and amqp091-go from Debian's packages, for the Go baseline
	apt-get install -y golang-go golang-github-rabbitmq-amqp091-go-dev

clean:
	rm -rf $(VENV) outbox .pytest_cache .mypy_cache .ruff_cache
