# pylb: `make demo` and `make test` install what they need and can be run again.
VENV      ?= .venv
PY        := $(VENV)/bin/python
HUGEPAGES ?= 512
SOURCES   := $(shell find native pylb proto -name '*.c' -o -name '*.h' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.proto' | grep -v '^pylb/_native.c$$') setup.py pyproject.toml

.PHONY: all deps venv build hugepages test demo bench doctor clean

all: build

deps:
	@scripts/install-deps.sh

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip==24.3.1

# Editable install: compiles native/ and the Cython boundary against DPDK.
$(VENV)/.built: $(VENV)/bin/python $(SOURCES)
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $@

venv build: deps $(VENV)/.built

hugepages:
	@scripts/hugepages.sh $(HUGEPAGES)

test: build hugepages
	$(PY) -m pytest -q -ra tests

demo: build hugepages
	@scripts/demo.sh

# Benchmarks: never part of `make test`. Results in bench/results/.
bench: HUGEPAGES = 4096
bench: build hugepages
	$(PY) bench/host_null.py
	$(PY) bench/l3_route.py
	$(PY) bench/paths.py
	$(PY) bench/maglev_build.py
	$(PY) bench/update_latency.py

doctor: build
	$(VENV)/bin/pylb doctor

clean:
	rm -rf build $(VENV) pylb/_native.c pylb/*.so *.egg-info
