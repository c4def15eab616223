# Two entry points: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv, install the CPU build of torch first (plain `torch` would pull a CUDA build),
# then the project with every extra.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.capeval-installed
TORCH_CPU := torch==2.13.0
export CAPEVAL_DATA_MIRROR ?= $(abspath $(CURDIR)/../shared/datasets)
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test install browser java clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH_CPU)
	$(PIP) install -q -e ".[all,dev]"
	@touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the browser tests (never `playwright install`); skipped where apt is unavailable.
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "note: /usr/bin/chromium missing; browser tests will be skipped"; }

# Java 11+ for METEOR/SPICE and the tests that run pycocoevalcap's Java tokenizer beside ours; skipped where apt is
# unavailable (those tests then skip, or fail under CAPEVAL_REQUIRE_DATA=1 as in CI).
java:
	@command -v java >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null) || \
	  echo "note: java missing; Java tests will be skipped"; }

test: $(STAMP) browser java
	$(PY) -m pytest -q -p no:cacheprovider tests

demo: $(STAMP)
	$(VENV)/bin/capeval demo --out demo-out

clean:
	rm -rf $(VENV) demo-out build *.egg-info
