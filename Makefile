# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgekit-installed
DEMO_DIR := build/demo
DEMO_DEVICE ?= stm32l4r5
# A quarter of the teacher's int8 size (about 43 KB): forces pruning / a student, then distillation.
DEMO_FLASH ?= 12KB

.PHONY: demo test venv lint clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m edgekit.examples.mnist1d_teacher --out $(DEMO_DIR)
	$(VENV)/bin/edgekit inspect $(DEMO_DIR)/teacher.h5 --device $(DEMO_DEVICE) --max-flash $(DEMO_FLASH) || test $$? -eq 3
	$(VENV)/bin/edgekit fit $(DEMO_DIR)/teacher.h5 --device $(DEMO_DEVICE) --max-flash $(DEMO_FLASH) \
		--data $(DEMO_DIR)/train.npz --val $(DEMO_DIR)/val.npz --out $(DEMO_DIR)/fit

test: $(STAMP)
	$(VENV)/bin/ruff check edgekit tests benchmarks
	$(PY) -m pytest -q -ra

lint: $(STAMP)
	$(VENV)/bin/ruff check edgekit tests benchmarks

clean:
	rm -rf build $(VENV) *.egg-info
