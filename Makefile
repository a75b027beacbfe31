# p4tap. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
P4C ?= p4c-bm2-ss
P4C_FLAGS := --arch v1model --std p4-16

P4TAP_SRC := $(wildcard p4src/v1model/*.p4) $(wildcard p4src/include/*.p4)
MINIMAL_SRC := bench/p4src/l2_minimal.p4

.PHONY: help setup apt-deps p4 test soak soak-crash soak-iap ptf run bench clean

help:  ## this list
	@grep -E '^[a-z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# Debian tools the tests and the demo drive: tshark reads captures, net-snmp's
# tools play the mediation device, radclient (freeradius-utils) plays a NAS, Mininet builds the demo's hosts. Installed
# only when missing, and only as root. Mininet comes without its recommended
# Open vSwitch: the demo's switch is bmv2, and only Mininet's hosts and links are used.
APT_PACKAGES := iproute2 ethtool iputils-ping tshark snmp snmptrapd freeradius-utils sip-tester
APT_NO_RECOMMENDS := mininet

apt-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	bare=$$(for p in $(APT_NO_RECOMMENDS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing$$bare" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "==> installing Debian packages: $$missing $$bare"; \
	    apt-get update -q >/dev/null || { echo "apt-get update failed"; exit 1; }; \
	    if [ -n "$$missing" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null \
	      || { echo "apt-get install $$missing failed"; exit 1; }; fi; \
	    if [ -n "$$bare" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$bare \
	      >/dev/null || { echo "apt-get install $$bare failed"; exit 1; }; fi; \
	  else echo "note: not root, not installing $$missing $$bare (tests that need them will skip)"; fi; \
	fi

$(VENV)/.installed: pyproject.toml
	@echo "==> setting up $(VENV) (Python dependencies)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

setup: apt-deps $(VENV)/.installed  ## create .venv with p4tap and its dependencies (and Debian tools, as root)

# p4c writes paths into its output as given, so it always runs from the
# repository root with relative paths: the output is then reproducible,
# which is what tests/test_artifacts.py checks.
build/v1model/p4tap.json build/v1model/p4tap.p4info.txtpb &: $(P4TAP_SRC)
	@command -v $(P4C) >/dev/null || { echo "$(P4C) not on PATH: see README, Toolchain"; exit 1; }
	@mkdir -p build/v1model
	$(P4C) $(P4C_FLAGS) --p4runtime-files build/v1model/p4tap.p4info.txtpb -o build/v1model/p4tap.json p4src/v1model/p4tap.p4

build/bench/l2_minimal.json build/bench/l2_minimal.p4info.txtpb &: $(MINIMAL_SRC)
	@command -v $(P4C) >/dev/null || { echo "$(P4C) not on PATH: see README, Toolchain"; exit 1; }
	@mkdir -p build/bench
	$(P4C) $(P4C_FLAGS) --p4runtime-files build/bench/l2_minimal.p4info.txtpb -o build/bench/l2_minimal.json $(MINIMAL_SRC)

# Tofino 1 (tna) and Tofino 2 (t2na), from the same controls as bmv2 (issue 25).
# p4c's open Tofino backend (p4c-barefoot) comes from ../shared/toolchain; where
# it is missing this says so and leaves the committed build/tna, build/t2na as
# they are. Kept, in the compiler's layout: p4info.txtpb, bfrt.json,
# manifest.json, pipe/context.json and pipe/<chip>.bin (under 2 MiB); the
# assembly, graphs and logs are removed; manifest.json's src_root is made
# relative to the repository (the compiler writes it absolute). bfas on Tofino 2 assembles no CLOTs
# from this program (`No length for clot`), so t2na compiles with --no-clot.
# --p4runtime-force-std-externs: P4Info with P4Runtime's own counters and
# meters and unprefixed names (as Stratum takes it; the names are bmv2's).
TOFINO_P4C ?= p4c
TNA_SRC := $(wildcard p4src/tna/*.p4) $(wildcard p4src/include/*.p4)

define tofino_build
	@if ! command -v p4c-barefoot >/dev/null || ! command -v $(TOFINO_P4C) >/dev/null; then \
	  echo "note: p4c-barefoot (p4c's Tofino backend) not on PATH: build/$(2) left as committed (../shared/toolchain/README.md)"; \
	else \
	  echo "$(TOFINO_P4C) --target $(1) --arch $(2) $(3) --p4runtime-force-std-externs --p4runtime-files build/$(2)/p4info.txtpb -o build/$(2) p4src/tna/p4tap.p4"; \
	  $(TOFINO_P4C) --target $(1) --arch $(2) $(3) --p4runtime-force-std-externs --p4runtime-files build/$(2)/p4info.txtpb -o build/$(2) p4src/tna/p4tap.p4 \
	    2> >(grep -v '^warning: Parser state .* unrolled' >&2) \
	    && rm -rf build/$(2)/pipe/logs build/$(2)/pipe/graphs build/$(2)/pipe/*.bfa \
	    && sed -i 's|"src_root": "$(CURDIR)/|"src_root": "|' build/$(2)/manifest.json \
	    || { rm -f build/$(2)/p4info.txtpb; exit 1; }; \
	fi
endef

build/tna/p4info.txtpb: $(TNA_SRC)
	$(call tofino_build,tofino,tna,)

build/t2na/p4info.txtpb: $(TNA_SRC)
	$(call tofino_build,tofino2,t2na,-Xp4c=--no-clot)

p4: build/v1model/p4tap.json build/bench/l2_minimal.json build/tna/p4info.txtpb build/t2na/p4info.txtpb  ## compile p4src/ for bmv2, Tofino 1 and 2 into build/ (commit the result)

# Tests run side by side: most of a test's time is spent waiting on a switch,
# a socket or a packet, not computing, so a 2-core machine keeps 4 busy. Each
# worker tags its veth and namespace names (tests/conftest.py); `TEST_JOBS=1`
# runs them one at a time.
TEST_JOBS ?= 4
test: setup  ## run every test (bmv2/p4c tests skip, saying why, where those are absent)
	$(PY) -m pytest -n $(TEST_JOBS) --dist worksteal --durations=10

soak: soak-crash soak-iap  ## the long campaigns (as root): random kills across large batches, the IAP soak on bmv2

soak-crash: setup  ## the full random-SIGKILL campaigns (tests marked soak, fixed seeds)
	$(PY) -m pytest -v -m soak --durations=0

ptf: setup  ## run only the PTF data-plane suite (on bmv2 and on the softswitch)
	$(PY) -m pytest -v tests/test_ptf.py

DEMO_ARGS ?=
run: setup  ## the demo: tap a subject (bmv2, or the softswitch without bmv2) and show what the MD receives
	$(PY) -m bmv2_topo.demo $(DEMO_ARGS)

bench: setup  ## run the benchmarks and append their figures to BENCHMARKS.md
	$(PY) -m bench.tap_scale
	$(PY) -m bench.controller_install

SOAK_MINUTES ?= 10
soak-iap: setup  ## the IAP driven as an MD drives it, on bmv2, for SOAK_MINUTES (default 10; issue 27)
	nice -n 5 $(PY) -m bench.iap_soak --minutes $(SOAK_MINUTES)

clean:  ## remove the venv and caches (build/ is source-controlled)
	rm -rf $(VENV) .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
