# specgraph — make run (the main job), make test (every test), make bench, make render.
# `setup` installs whatever is missing: Debian's graphviz, chromium (the viewer's browser tests) and
# dataset-fashion-mnist through apt-get where available,
# Python packages into .venv through pip. torch/torchvision are pinned to the releases
# this machine's pip serves from disk (no newer torch is pulled).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SPECGRAPH := $(VENV)/bin/specgraph
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.stamp-setup

.PHONY: setup run test bench render clean fuzz

setup: $(STAMP)

$(STAMP): pyproject.toml
	@{ command -v dot >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 && test -d /usr/share/datasets/fashion-mnist; } || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing graphviz, chromium and dataset-fashion-mnist (apt-get)"; \
	    (apt-get install -y -q graphviz chromium dataset-fashion-mnist >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q graphviz chromium dataset-fashion-mnist >/dev/null 2>&1)) \
	      || echo "warning: could not install graphviz/chromium/dataset-fashion-mnist; rendering, the viewer's browser tests and --data fashion-mnist may be unavailable"; \
	  else echo "warning: graphviz's 'dot', chromium or Fashion-MNIST not found and apt-get unavailable"; fi; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_PINS)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,data]'
	@touch $(STAMP)

run: setup
	$(PY) scripts/main_job.py

test: setup
	@start=$$(date +%s); OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -p no:cacheprovider -n 2 --dist loadfile -m "not serial"; \
	  rc=$$?; $(PY) -m pytest -p no:cacheprovider -m serial || rc=1; \
	  echo "make test: the suite took $$(( $$(date +%s) - start )) s of wall time"; exit $$rc

bench: setup
	$(PY) benchmarks/run.py

# The long fuzz profile (tests/fuzzing.py): 100,000 examples over test_fuzz.py; 50,000 random
# valid networks in test_soundness.py and 50,000 random op applications (every op's parameter
# space, tiny and odd sizes, symbolic and concrete) in test_op_soundness.py.
# `make fuzz FUZZ_EXAMPLES=N NETWORKS=M` sets the fuzz total and the soundness counts.
FUZZ_EXAMPLES ?= 100000
NETWORKS ?= 50000
# Both cores, a file per worker (the fuzz tests on one, the soundness tests on the other).
fuzz: setup
	@start=$$(date +%s); SPECGRAPH_FUZZ=long SPECGRAPH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) SPECGRAPH_SOUNDNESS_EXAMPLES=$(NETWORKS) \
	  OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --hypothesis-show-statistics \
	  tests/test_fuzz.py tests/test_soundness.py tests/test_op_soundness.py; \
	  rc=$$?; echo "make fuzz: $$(( $$(date +%s) - start )) s of wall time"; exit $$rc

render: setup
	$(SPECGRAPH) render-all specs render

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
