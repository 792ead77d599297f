# synsetforge: each target runs one stage of `python -m pipeline` in .venv, which the first
# target sets up. `make help` lists the targets; README.md explains each stage.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SETUP := $(VENV)/.setup-done

SUBSET ?= demo
DATA ?= data

# $(call opt,VAR,--flag) gives "--flag $(VAR)" when VAR is set; $(call flag,VAR,--flag)
# gives "--flag" when VAR is 1, yes or true.
opt = $(if $(strip $($(1))),$(2) '$(strip $($(1)))')
flag = $(if $(filter 1 yes true,$($(1))),$(2))
STAGE_ARGS = $(strip --data '$(DATA)' --subset '$(SUBSET)' $(call flag,FORCE,--force))
SYNSETS_ARGS = $(strip $(call opt,ROOT,--root) $(call opt,DEPTH,--depth) $(call flag,LEAVES,--leaves) \
	$(call opt,WNIDS,--wnids) $(call opt,EXCLUDE,--exclude) $(call flag,ALL_NOUNS,--all-nouns))
CANDIDATES_ARGS = $(strip $(call opt,SOURCE,--source) $(call opt,URLS,--urls) $(call opt,MAX_PER_CLASS,--max-per-class) \
	$(call opt,PER_QUERY,--per-query) $(call opt,LICENSE,--license) $(call opt,API,--api) $(call opt,SHARD_SIZE,--shard-size))
DOWNLOAD_ARGS = $(strip $(call opt,MAX_SIDE,--max-side) $(call opt,MIN_SIDE,--min-side) $(call flag,KEEP_ORIGINAL,--keep-original) \
	$(call opt,TIMEOUT,--timeout) $(call opt,RETRIES,--retries) $(call opt,MAX_MB,--max-mb) \
	$(call opt,EXECUTOR,--executor) $(call opt,PROCESSES,--processes) $(call opt,CONCURRENCY,--concurrency) \
	$(call opt,PER_HOST,--per-host) $(call opt,MIN_PER_CLASS,--min-per-class) \
	$(if $(filter 0 no false,$(RESPECT_OPTOUTS)),--ignore-optouts) $(if $(filter 0 no false,$(RESPECT_ROBOTS)),--ignore-robots) \
	$(call opt,OPTOUT_DIRECTIVES,--optout-directives) $(call opt,DOMAINS_BLOCKLIST,--domains-blocklist) \
	$(call opt,HOST_RATE,--host-rate) $(call opt,HOST_BURST,--host-burst) $(call flag,ALLOW_PRIVATE_HOSTS,--allow-private-hosts))
DEDUPE_ARGS = $(strip $(call opt,SRC,--src) $(call opt,RADIUS,--radius) $(call opt,VERIFY,--verify) \
	$(call opt,REFERENCE,--reference) $(call opt,LABELS,--labels) $(call opt,PROCESSES,--processes))

.PHONY: help setup synsets candidates download dedupe demo test bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

setup: $(SETUP) ## create .venv, install synsetforge and provision WordNet 3.0

$(SETUP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(PY) -m pipeline wordnet --provision
	touch $@

synsets: $(SETUP) ## choose the classes: SUBSET=ilsvrc1k|imagenet21k|demo, or ROOT=<wnid> / WNIDS=<file>
	$(PY) -m pipeline synsets $(STAGE_ARGS) $(SYNSETS_ARGS)

candidates: $(SETUP) ## candidate URLs: SOURCE=urllist URLS=<file> | commons | openverse | flickr | demo
	test -f '$(DATA)/$(SUBSET)/synsets.parquet' || $(MAKE) --no-print-directory synsets
	$(PY) -m pipeline candidates $(STAGE_ARGS) $(CANDIDATES_ARGS)

download: $(SETUP) ## fetch and verify every candidate into images/ and ledger/ (runs candidates when missing)
	test -d '$(DATA)/$(SUBSET)/candidates' || $(MAKE) --no-print-directory candidates
	$(PY) -m pipeline download $(STAGE_ARGS) $(DOWNLOAD_ARGS)

dedupe: $(SETUP) ## exact and near-duplicate clusters of images/ (or SRC=<folder>): dedupe/ (runs download when missing)
	test -n '$(SRC)' || test -d '$(DATA)/$(SUBSET)/images' || $(MAKE) --no-print-directory download
	$(PY) -m pipeline dedupe $(STAGE_ARGS) $(DEDUPE_ARGS)

demo: $(SETUP) ## run every stage that exists on the offline demo subset
	$(MAKE) --no-print-directory synsets SUBSET=demo
	$(MAKE) --no-print-directory download SUBSET=demo
	$(MAKE) --no-print-directory dedupe SUBSET=demo

test: $(SETUP) ## the test suite
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(SETUP) ## print the speed figures of bench/
	$(PY) bench/synsets.py
	$(PY) bench/download_vs_img2dataset.py
	$(PY) bench/download_kill_resume.py
	$(PY) bench/dedupe_quality.py --tiny
	$(PY) bench/dedupe_speed.py

clean: ## remove the data folder of SUBSET
	rm -rf '$(DATA)/$(SUBSET)'
