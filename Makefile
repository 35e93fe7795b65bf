# pylb: `make demo` and `make test` install what they need and can be run again.
VENV      ?= .venv
PY        := $(VENV)/bin/python
HUGEPAGES ?= 512
SOURCES   := $(shell find native pylb proto -name '*.c' -o -name '*.h' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.proto' | grep -v '^pylb/_\(native\|limits\).c$$') native/Makefile setup.py pyproject.toml

.PHONY: all deps venv build hugepages test check demo fleet-demo bench bench-stages bench-instructions fuzz test-asan soak doctor docs deb clean

all: build

deps:
	@scripts/install-deps.sh

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip==24.3.1

# Editable install (dependencies, entry points) when the project's definition
# changes; after that only what changed is recompiled (native/Makefile, setup.py):
# a changed C file costs seconds, not a rebuild of native/.
$(VENV)/.installed: $(VENV)/bin/python pyproject.toml setup.py
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $@

$(VENV)/.built: $(VENV)/.installed $(SOURCES)
	$(PY) setup.py -q build_ext --inplace
	@touch $@

venv build: deps $(VENV)/.built

# `make test` and `make demo` reserve exactly what they need (when no hugepage
# is in use), so they pass on a fresh machine whatever ran before; the others
# at least what they need.
hugepages:
	@scripts/hugepages.sh $(HUGEPAGES_MODE) $(HUGEPAGES)

test demo: HUGEPAGES_MODE = --exact

test: build hugepages
	$(PY) -m pytest -q -ra tests

# The inner loop: the unit and fixture tiers (no ports, no namespaces), about
# a minute; `make test` runs every tier (docs/testing.md).
check: build
	$(PY) -m pytest -q -ra -m "unit or fixture" tests

# The Debian package: dist/pylb_VERSION_ARCH.deb (docs/operator-guide.md#installing).
deb: build
	PY=$(PY) scripts/build-deb.sh dist

# The documentation site (docs/, mkdocs-material) in site/; broken links fail it.
docs: build
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

demo: build hugepages
	@scripts/demo.sh

# Two appliances behind a BGP router with ECMP: one killed, one restarted (docs/fleet.md).
fleet-demo: build hugepages
	$(PY) scripts/fleet_demo.py

# Benchmarks: never part of `make test`. Results in bench/results/.
bench: HUGEPAGES = 4096
bench: build hugepages
	$(PY) bench/host_null.py
	$(PY) bench/l3_route.py
	$(PY) bench/paths.py
	$(PY) bench/maglev_build.py
	$(PY) bench/update_latency.py
	$(PY) bench/set_backend.py
	$(PY) bench/records.py

# Where a packet's cycles go: the dataplane built again with its pipeline cut
# after each stage (bench/stages.py; about 20 minutes, most of it compiling).
bench-stages: HUGEPAGES = 2048
bench-stages: build hugepages
	$(PY) bench/stages.py

# The instructions a packet costs, by function (bench/instructions.py: counted
# under valgrind, exact where cycles on this VM move by 10-20%; a few minutes).
bench-instructions: build
	$(PY) bench/instructions.py

# libFuzzer targets (packet path, config loader, API validation) with ASan and
# UBSan, FUZZ_SECONDS each; `make test` runs each for a few seconds.
FUZZ_SECONDS ?= 600
fuzz: build hugepages
	scripts/fuzz.sh $(FUZZ_SECONDS)

# The whole suite against a sanitizer build (ASan + UBSan) of native/ and the binding.
test-asan: deps hugepages
	scripts/test-asan.sh

# 100 million packets of every path and malformed frames; mbufs and connections must come back.
soak: HUGEPAGES = 1024
soak: build hugepages
	$(PY) bench/soak.py

doctor: build
	$(VENV)/bin/pylb doctor

clean:
	rm -rf build site dist $(VENV) pylb/_native.c pylb/_limits.c pylb/*.so *.egg-info
