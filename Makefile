# Two entry points, both idempotent and fast once installed:
#   make demo   set up the environment and run the demo sweep (python -m medsight_ray.tune)
#   make test   set up the environment and run the test suite
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.medsight-installed
# torch and torchvision go first and pinned: a bare requirement resolves to an
# unpredictable build, and timm needs a torchvision that imports beside torch.
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test clean
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: setup
	$(PY) -m medsight_ray.tune

test: setup
	$(PY) -m pytest -q --durations=10

clean:
	rm -rf $(VENV) medsight_results .pytest_cache
