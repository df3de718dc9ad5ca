# knight — every job is a target; each one prepares what it needs, so a fresh clone can run any.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KNIGHT := $(BIN)/knight
STAMP := $(VENV)/.installed
# Integration tests run their own lab, so they never disturb the one `make lab` brings up.
TEST_LAB ?= knight-test


.PHONY: promtool chromium molecule
.PHONY: chaos-skipped-node chaos-reused-flag chaos-rollback chaos chaos-ssh knightmare matrix report
.PHONY: observe
.PHONY: help setup image releases lab lab-down status load deploy rollback verify faults bench test test-unit test-integration lint format clean demo staging staging-down

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP) ## Make .venv and install the toolkit with its dev tools

image: $(STAMP) ## Build the lab image (Debian base by mmdebstrap; BASE_IMAGE=... to use another)
	$(KNIGHT) image build

releases: $(STAMP) ## Build every release artifact of the catalog into dist/releases
	$(KNIGHT) release build

lab: image ## Bring up the venue, the client and smars-1..8 on the baseline release
	$(KNIGHT) lab up

observe: image ## The lab with Prometheus, Alertmanager and their webhook receiver (their image built when missing)
	$(KNIGHT) lab up --observe

lab-down: $(STAMP) ## Remove everything the lab created
	$(KNIGHT) lab down

status: $(STAMP) ## Show each node's release, tree hash, flags and health
	$(KNIGHT) lab status

load: lab ## Send five seconds of parent orders to every node
	$(KNIGHT) load --rate 400 --duration 5

VERSION ?= 8.0.0
# INVENTORY=path: deploy, roll back and verify the fleet an Ansible inventory declares (a staging
# fleet, or the one `make staging` writes) instead of the lab; nothing of the lab is needed then.
INVENTORY ?=
FLEET = $(if $(INVENTORY),--inventory $(INVENTORY))
FLEET_NEEDS = $(if $(INVENTORY),$(STAMP),lab)

deploy: $(FLEET_NEEDS) ## Deploy VERSION (default 8.0.0) to every node, all or none (INVENTORY=... for a fleet)
	$(KNIGHT) deploy $(VERSION) $(FLEET)

rollback: $(FLEET_NEEDS) ## Put every node back on the baseline release (INVENTORY=... for a fleet)
	$(KNIGHT) rollback $(FLEET)

verify: $(FLEET_NEEDS) ## Run the testinfra suite (tests/infra) on every node (INVENTORY=... for a fleet)
	$(KNIGHT) verify $(FLEET)

# The staging lab: a lab of its own, reached over ssh as a staging fleet is, and its inventory.
STAGING_LAB ?= $(or $(KNIGHT_LAB),knight)-staging
STAGING_INVENTORY ?= $(CURDIR)/.knight/$(STAGING_LAB)/inventory.yml
staging: image ## The ssh lab (STAGING_LAB, sshd in every node) and its inventory: then make deploy INVENTORY=...
	KNIGHT_LAB=$(STAGING_LAB) $(KNIGHT) lab up --transport ssh
	KNIGHT_LAB=$(STAGING_LAB) $(KNIGHT) lab inventory --out $(STAGING_INVENTORY)
	@echo "make deploy INVENTORY=$(STAGING_INVENTORY)"

staging-down: $(STAMP) ## Remove the staging lab and its keys
	KNIGHT_LAB=$(STAGING_LAB) $(KNIGHT) lab down

# Molecule's scenario (molecule/default: converge = deploy.yml, idempotence, verify = tests/infra)
# on a fleet that exists: INVENTORY, or the staging lab's when none is given.
molecule: $(if $(INVENTORY),$(STAMP),staging) ## molecule test of the playbooks on an ssh fleet (INVENTORY=..., default the staging lab)
	PATH=$(CURDIR)/$(BIN):$$PATH KNIGHT_INVENTORY=$(or $(INVENTORY),$(STAGING_INVENTORY)) KNIGHT_RELEASE=$(VERSION) $(BIN)/molecule test

FAULTS ?= 100
SEED ?= 2012
faults: $(FLEET_NEEDS) ## Deploy under FAULTS seeded fault schedules (default 100): mixed end states, lost orders (INVENTORY=... over ssh)
	$(KNIGHT) faults --seed $(SEED) --count $(FAULTS) $(FLEET)

bench: image ## Measure the performance figures into reports/bench.json
	$(KNIGHT) bench

# promtool checks the monitor's Prometheus rules (tests/unit/toolkit/monitor/test_monitor_promtool.py,
# which fails without it); Debian's prometheus package has it. Installed when missing and we may
# (root with apt-get); otherwise install it yourself.
promtool:
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && echo "installing promtool (Debian package prometheus)" \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     --no-install-recommends prometheus >/dev/null; } || echo "promtool not found"

# Headless Chromium opens the HTML report in tests/unit/toolkit/report/test_report_browser.py
# (through Selenium and chromedriver); Debian's chromium and chromium-driver packages have them.
# Installed when missing and we may (root with apt-get); the tests fail, not skip, without them.
chromium:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { [ "$$(id -u)" = 0 ] \
	  && command -v apt-get >/dev/null \
	  && echo "installing headless Chromium (Debian packages chromium, chromium-driver)" \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     --no-install-recommends chromium chromium-driver >/dev/null; } || echo "chromium not found"

test-unit: $(STAMP) promtool chromium ## Unit tests (no Docker)
	$(BIN)/pytest tests/unit -q

test-integration: image ## Integration tests on a real lab (KNIGHT_LAB=$(TEST_LAB))
	KNIGHT_LAB=$(TEST_LAB) $(BIN)/pytest tests/integration -q

test: image promtool chromium ## Every test: unit, then integration on a real lab
	KNIGHT_LAB=$(TEST_LAB) $(BIN)/pytest tests/unit tests/integration -q

lint: $(STAMP) ## ruff (lint and format check) and ansible-lint on the playbooks
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd playbooks && PATH="$(CURDIR)/$(BIN):$$PATH" ansible-lint --offline -q --nocolor .

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Experiments: each runs the 2012 way (unsafe) and guarded; `--expect` makes the exit status say
# whether each mode showed what the experiment file expects of it. SET="node=smars-3" picks the node.
SET ?=
EXPERIMENT = $(KNIGHT) experiment run $(1) --mode $(2) --expect $(if $(SET),--set $(SET))

chaos-skipped-node: lab ## A node skipped in the deploy (unsafe, then guarded)
	$(call EXPERIMENT,skipped_node,unsafe)
	$(call EXPERIMENT,skipped_node,guarded)

chaos-reused-flag: lab ## A reused flag meets a rollout half done (unsafe, then guarded)
	$(call EXPERIMENT,reused_flag,unsafe)
	$(call EXPERIMENT,reused_flag,guarded)

chaos-rollback: lab ## The seven good nodes rolled back with the flag still on (unsafe, then guarded)
	$(call EXPERIMENT,rollback,unsafe)
	$(call EXPERIMENT,rollback,guarded)

chaos: chaos-skipped-node chaos-reused-flag chaos-rollback ## The three experiments, both modes

# The same three experiments, both modes, on the staging lab through its inventory: ssh to the
# nodes and HTTP to their admin ports and to the venue, no Docker call (docs/fleets.md).
# INVENTORY=path runs them on another fleet whose inventory names its market.
SSH_EXPERIMENT = $(call EXPERIMENT,$(1),$(2)) --inventory $(or $(INVENTORY),$(STAGING_INVENTORY))
chaos-ssh: $(if $(INVENTORY),$(STAMP),staging) ## The three experiments, both modes, over ssh through an inventory (default: the staging lab's)
	$(call SSH_EXPERIMENT,skipped_node,unsafe)
	$(call SSH_EXPERIMENT,skipped_node,guarded)
	$(call SSH_EXPERIMENT,reused_flag,unsafe)
	$(call SSH_EXPERIMENT,reused_flag,guarded)
	$(call SSH_EXPERIMENT,rollback,unsafe)
	$(call SSH_EXPERIMENT,rollback,guarded)

knightmare: lab ## The whole 2012 sequence, unsafe and guarded
	$(call EXPERIMENT,knightmare,unsafe)
	$(call EXPERIMENT,knightmare,guarded)

matrix: lab ## Every experiment with no guard, each guard alone, and all: the defense-in-depth table
	$(KNIGHT) experiment matrix

report: $(STAMP) ## Write reports/index.md and index.html with a page and a plot per run, from the journals
	$(KNIGHT) report

demo: lab ## From nothing: image, lab, the three experiments both ways, the report and its table
	$(KNIGHT) lab status
	$(MAKE) --no-print-directory chaos
	$(KNIGHT) report

clean: ## Remove the labs, build output and the venv
	-[ -x $(KNIGHT) ] && $(KNIGHT) lab down
	-[ -x $(KNIGHT) ] && KNIGHT_LAB=$(TEST_LAB) $(KNIGHT) lab down
	-[ -x $(KNIGHT) ] && KNIGHT_LAB=$(TEST_LAB)-ssh $(KNIGHT) lab down
	-[ -x $(KNIGHT) ] && KNIGHT_LAB=$(STAGING_LAB) $(KNIGHT) lab down
	rm -rf dist reports .test-reports .pytest_cache .ruff_cache .knight $(VENV)
