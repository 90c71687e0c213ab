# One entry point: `make demo` and `make test` set everything up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.setup-done
DEMO_DIR ?= demo

.PHONY: setup demo test bench clean

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml Makefile soundalike/models/musicnn/_kernels.c soundalike/models/musicnn/_kernels_impl.h | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0            # the CPU wheel on disk; never a bare "torch"
	$(PIP) install -q -e '.[all,test]'
	$(PIP) install -q --no-deps musicnn==0.1.0 aisfx==0.1.2  # only for their weight files; never imported
	touch $@

setup: $(STAMP)

demo: setup
	$(PY) scripts/demo.py --dir $(DEMO_DIR)

test: setup  # two pytest-xdist workers, one test file each at a time, so module fixtures are built once
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: setup
	$(PY) bench/ingest.py
	$(PY) bench/search.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) tests/.data
