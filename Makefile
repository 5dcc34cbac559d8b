# Two commands on a fresh Linux machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install lint clean bench typecheck

$(STAMP): setup.py setup.cfg constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pointgroup-ros demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(VENV)/bin/pointgroup-ros bench

typecheck: $(STAMP)
	$(PY) -m mypy --config-file mypy.ini pointgroup_ros/ros

clean:
	rm -rf $(VENV) build *.egg-info demo_out
