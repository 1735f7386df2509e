# `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help run test test-fast lint bench bench-quick system-deps

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(STAMP): requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP) ## run locally: embedded S3, submit on :8080, viewer on :8081
	$(PY) -m chalicelib.localrun

system-deps: ## Debian packages the tests need (real Crashpad handler, chromium)
	@if ! dpkg -s libcurl4 libcurl3-gnutls chromium chromium-driver >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			libcurl4 libcurl3-gnutls chromium chromium-driver >/dev/null; fi

test: $(STAMP) system-deps ## every test: unit, moto, SeaweedFS, real Crashpad, browser
	$(PY) -m pytest

test-fast: $(STAMP) ## the tests that need no Debian packages
	$(PY) -m pytest -m "not crashpad and not browser"

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .

bench: $(STAMP) ## every benchmark at full size, one table (see bench/README.md)
	$(PY) -m bench

bench-quick: $(STAMP) ## every benchmark at small sizes: a smoke run of `make bench`
	$(PY) -m bench --quick
