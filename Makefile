# Two entry points, both idempotent and fast once installed:
#   make demo   set up the environment and run the demo sweep (python -m medsight_ray.tune)
#   make test   set up the environment and run the test suite
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.medsight-installed
# torch and torchvision go first and pinned: a bare requirement resolves to an
# unpredictable build, and timm needs a torchvision that imports beside torch.
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test clean browser
setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: setup
	$(PY) -m medsight_ray.tune

# Debian's headless Chromium and its driver, for the test that renders the report in a
# real browser; installed when missing and this is root (CI is), else that test skips.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	    else echo "chromium not installed (apt-get install chromium chromium-driver): the browser test skips"; fi; \
	fi

test: setup browser
	$(PY) -m pytest -q --durations=10

clean:
	rm -rf $(VENV) medsight_results .pytest_cache
