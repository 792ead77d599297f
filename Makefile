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

.PHONY: help setup synsets demo test bench clean

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

demo: $(SETUP) ## run every stage that exists on the offline demo subset
	$(MAKE) --no-print-directory synsets SUBSET=demo

test: $(SETUP) ## the test suite
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(SETUP) ## print the speed figures of bench/
	$(PY) bench/synsets.py

clean: ## remove the data folder of SUBSET
	rm -rf '$(DATA)/$(SUBSET)'
