# specgraph — make run (the main job), make test (every test), make bench, make render.
# `setup` installs whatever is missing: Debian's graphviz through apt-get where available,
# Python packages into .venv through pip. torch/torchvision are pinned to the releases
# this machine's pip serves from disk (no newer torch is pulled).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SPECGRAPH := $(VENV)/bin/specgraph
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.stamp-setup

.PHONY: setup run test bench render clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v dot >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing graphviz (apt-get)"; \
	    (apt-get install -y -q graphviz >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q graphviz >/dev/null 2>&1)) \
	      || echo "warning: could not install graphviz; rendering to svg/png will be unavailable"; \
	  else echo "warning: graphviz's 'dot' not found and apt-get unavailable"; fi; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_PINS)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,data]'
	@touch $(STAMP)

run: setup
	$(PY) -m specgraph.main_job

test: setup
	$(PY) -m pytest -q -p no:cacheprovider

bench: setup
	$(PY) benchmarks/run.py

render: setup
	$(SPECGRAPH) render-all specs render

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
