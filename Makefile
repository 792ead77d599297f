# synsetforge: each target runs one stage of `python -m pipeline` in .venv, which the first
# target sets up. `make help` lists the targets; README.md introduces the stages and
# docs/stages/ holds each one's reference.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SETUP := $(VENV)/.setup-done

# `make help` lists the settings every stage reads from the `## NAME=value: meaning` lines.
## SUBSET=demo: the dataset's name, and the folder of DATA its stages write to
SUBSET ?= demo
## DATA=data: the data root, a folder or a filesystem URL (s3://bucket/prefix, gs://...)
DATA ?= data
## FORCE=1: rerun a stage that is up to date
## PROGRESS_SECONDS=10: seconds between progress lines when not on a terminal (0: none)

# $(call opt,VAR,--flag) gives "--flag $(VAR)" when VAR is set; $(call flag,VAR,--flag)
# gives "--flag" when VAR is 1, yes or true.
opt = $(if $(strip $($(1))),$(2) '$(strip $($(1)))')
flag = $(if $(filter 1 yes true,$($(1))),$(2))
STAGE_ARGS = $(strip --data '$(DATA)' --subset '$(SUBSET)' $(call flag,FORCE,--force))
SYNSETS_ARGS = $(strip $(call opt,ROOT,--root) $(call opt,DEPTH,--depth) $(call flag,LEAVES,--leaves) \
	$(call opt,WNIDS,--wnids) $(call opt,EXCLUDE,--exclude) $(call flag,ALL_NOUNS,--all-nouns))
CANDIDATES_ARGS = $(strip $(call opt,SOURCE,--source) $(call opt,URLS,--urls) $(call opt,MAX_PER_CLASS,--max-per-class) \
	$(call opt,PER_QUERY,--per-query) $(call opt,LICENSE,--license) $(call opt,API,--api) $(call opt,SHARD_SIZE,--shard-size) \
	$(call opt,CONTACT,--contact))
DOWNLOAD_ARGS = $(strip $(call opt,MAX_SIDE,--max-side) $(call opt,MIN_SIDE,--min-side) $(call flag,KEEP_ORIGINAL,--keep-original) \
	$(call opt,TIMEOUT,--timeout) $(call opt,RETRIES,--retries) $(call opt,MAX_MB,--max-mb) \
	$(call opt,EXECUTOR,--executor) $(call opt,PROCESSES,--processes) $(call opt,CONCURRENCY,--concurrency) \
	$(call opt,PER_HOST,--per-host) $(call opt,MIN_PER_CLASS,--min-per-class) \
	$(if $(filter 0 no false,$(RESPECT_OPTOUTS)),--ignore-optouts) $(if $(filter 0 no false,$(RESPECT_ROBOTS)),--ignore-robots) \
	$(call opt,OPTOUT_DIRECTIVES,--optout-directives) $(call opt,DOMAINS_BLOCKLIST,--domains-blocklist) \
	$(call opt,HOST_RATE,--host-rate) $(call opt,HOST_BURST,--host-burst) $(call flag,ALLOW_PRIVATE_HOSTS,--allow-private-hosts) \
	$(call opt,CONTACT,--contact))
DEDUPE_ARGS = $(strip $(call opt,FOLDER,--folder) $(call opt,RADIUS,--radius) $(call opt,VERIFY,--verify) \
	$(call opt,REFERENCE,--reference) $(call opt,LABELS,--labels) $(call opt,PROCESSES,--processes) $(call opt,EXECUTOR,--executor))
EXPORT_ARGS = $(strip $(call opt,ROUND,--round) $(call opt,TASK,--task) $(call opt,HIT_FORMATS,--formats) $(call opt,IMAGE_BASE_URL,--image-base-url) \
	$(call flag,MTURK_ALLOW_HTTP,--allow-http) \
	$(call opt,VOTES,--votes) $(call opt,CONTROLS,--controls) $(call opt,SEED,--seed) $(call opt,BOX_TRAIN_SHARE,--train-share) \
	$(call opt,BOX_MAX_ROUNDS,--max-box-rounds) $(call opt,BOX_GOLD,--gold))
SERVE_ARGS = $(strip $(call opt,ROUND,--round) $(call opt,TASK,--task) $(call opt,HOST,--host) $(call opt,PORT,--port) $(call opt,RESERVATION_MINUTES,--reservation-minutes))
SIMULATE_ARGS = $(strip $(call opt,ROUND,--round) $(call opt,TASK,--task) $(call opt,TRUTH,--truth) \
	$(call opt,TRUTH_BOXES,--truth-boxes) $(call opt,SPAMMERS,--spammers) $(call opt,SEED,--seed) $(call flag,SCORE,--score))
IMPORT_ARGS = $(strip --results '$(RESULTS)' $(call opt,METHOD,--method) $(call opt,CONFIDENCE,--confidence) \
	$(call opt,MAX_VOTES,--max-votes) $(call opt,MIN_WORKER_ACCURACY,--min-worker-accuracy) \
	$(call opt,BOX_METHOD,--box-method) $(call opt,BOX_MAX_ROUNDS,--max-box-rounds) $(call opt,BOX_MIN_GOLD,--min-gold-answers))
DEMO_ROUNDS ?= 1 2 3 4
DEMO_BOX_ROUNDS ?= 12
# The demo trains on 210 images for 10 epochs: a box loss weighted 4 (the trainer's default, best
# on Tiny ImageNet) leaves its classifier at 80% test error; 0.5 gave 18-20% on two demo builds,
# the least of 0, 0.5, 1 and 2 (see docs/stages/baseline.md).
DEMO_BOX_WEIGHT ?= 0.5
# The demo's pictures come from the project's own image host (pipeline/imagehost) on 127.0.0.1.
# With DEMO_HOST=1 (the default for SUBSET=demo with the demo source), `make candidates` and
# `make download` run under `python -m pipeline.imagehost --port DEMO_PORT -- <stage>`, which
# serves while the stage runs and stops after it, failed or not; and they pass what anyone
# fetching from a host on their own machine passes: its URL (API), ALLOW_PRIVATE_HOSTS=1 and
# HOST_RATE=0. DEMO_PORT is fixed, not picked free: the candidates' URLs name it, and the
# download must find the host where the candidates found it.
DEMO_PORT ?= 8642
DEMO_HOST ?= $(if $(filter demo,$(SUBSET)),$(if $(filter-out demo,$(SOURCE)),,1))
ifneq ($(filter 1 yes true,$(DEMO_HOST)),)
SERVE_DEMO = $(PY) -m pipeline.imagehost --port $(DEMO_PORT) --
API ?= http://127.0.0.1:$(DEMO_PORT)
ALLOW_PRIVATE_HOSTS ?= 1
HOST_RATE ?= 0
endif
# The demo's HITs show images served on 127.0.0.1 (annotate-serve), which the mturk format
# refuses elsewhere: workers on MTurk could not see them.
MTURK_ALLOW_HTTP ?= $(if $(filter demo,$(SUBSET)),1)
# Box tasks' simulated workers see the true boxes the demo host serves (/truth/...): it serves
# while they answer, and while SCORE=1 scores the crowd's boxes against them, unless
# TRUTH_BOXES=<file> gives them.
SIMULATE_HOST = $(if $(or $(filter draw quality coverage,$(TASK)),$(call flag,SCORE,1)),$(if $(TRUTH_BOXES),,$(SERVE_DEMO)))
TRAIN_ARGS = $(strip $(call opt,ARCH,--arch) $(call opt,EPOCHS,--epochs) $(call opt,BATCH,--batch) $(call opt,LR,--lr) \
	$(call opt,SIZE,--size) $(call opt,SCHEDULE,--schedule) $(call opt,WORKERS,--workers) $(call opt,NAME,--name) \
	$(call opt,SEED,--seed) $(call opt,PACKED,--packed) $(call flag,RESUME,--resume) $(call flag,SKIP_BAD,--skip-bad) \
	$(call opt,BOX_WEIGHT,--box-weight) $(call flag,COMPILE,--compile) $(call flag,FORCE,--force))
# $(call exists,PATH): PATH is there, on disk or under a DATA URL (asked through fsspec)
exists = $(if $(findstring ://,$(1)),$(PY) -m pipeline.remote exists '$(1)',test -e '$(1)')
# The demo's box rounds, after its manifests: draw, quality and coverage tasks exported, answered
# by the simulated crowd and imported, round after round, up to DEMO_BOX_ROUNDS, ending at the
# first round with nothing to ask. A task whose answers imports.json records is skipped by a shell
# test, not a make step, so that a second `make demo` starts no python for it (for a DATA URL
# every step runs, and skips itself).
box_imported = $(if $(findstring ://,$(DATA)),false,grep -qsF 'box-rounds/round-'$(1)/$(2)'/results-simulated.csv"' '$(DATA)/demo/annotation/imports.json')
box_exported = $(if $(findstring ://,$(DATA)),$(PY) -m pipeline.remote exists,test -e) "$(1)/tasks.parquet"
DEMO_BOX_LOOP = for round in $$(seq $(DEMO_BOX_ROUNDS)); do asked=; \
	  for task in draw quality coverage; do at='$(DATA)/demo/annotation/box-rounds/round-'$$round/$$task; \
	    if $(call box_imported,$$round,$$task); then asked=1; continue; fi; \
	    $(MAKE) --no-print-directory annotate-export SUBSET=demo TASK=$$task ROUND=$$round || exit 1; \
	    $(call box_exported,$$at) || continue; asked=1; \
	    $(MAKE) --no-print-directory annotate-simulate SUBSET=demo TASK=$$task ROUND=$$round && \
	    $(MAKE) --no-print-directory annotate-import SUBSET=demo RESULTS="$$at/results-simulated.csv" || exit 1; \
	  done; test -n "$$asked" || break; done
# make train NPROC=N: N processes on this machine under PyTorch's launcher (DistributedDataParallel)
TRAIN_RUN = $(if $(strip $(NPROC)),$(VENV)/bin/torchrun --standalone --nproc_per_node=$(strip $(NPROC)) -m baseline,$(PY) -m baseline)
DATASET_EXPORT_ARGS = $(strip $(call opt,FORMAT,--format) $(call flag,LINK,--link) $(call opt,PREFIX,--prefix) $(call opt,TREE,--tree) $(call opt,SHARD_MB,--shard-mb))
DATASET_IMPORT_ARGS = $(strip --src '$(SRC)' $(call opt,LAYOUT,--layout) $(call opt,WNIDS,--wnids) $(call opt,PROCESSES,--processes))
MANIFESTS_ARGS = $(strip $(call opt,TRAIN_MAX,--train-max) $(call opt,VAL_N,--val-n) $(call opt,TEST_N,--test-n) \
	$(call opt,SAMPLING,--sampling) $(call opt,MIN_TRAIN,--min-train) $(call flag,DROP_SMALL,--drop-small) \
	$(call flag,UNVERIFIED,--unverified) $(call opt,SEED,--seed))

.PHONY: help setup synsets candidates download dedupe annotate-export annotate-serve annotate-simulate annotate-import manifests validate card export import evaluate train predict summary demo test test-fast lint format bench clean

help: ## list the targets and the settings every stage reads
	@awk 'function row(name, text) { if (length(name) > w) w = length(name); return name "\t" text } \
	  /^[a-z-]+:.*## / { targets[++t] = row(substr($$0, 1, index($$0, ":") - 1), substr($$0, index($$0, "## ") + 3)) } \
	  /^## [A-Z_]+=[^ :]*: / { settings[++s] = row(substr($$0, 4, index($$0, ": ") - 4), substr($$0, index($$0, ": ") + 2)) } \
	  function show(line) { split(line, f, "\t"); printf "  %-" w "s  %s\n", f[1], f[2] } \
	  END { print "usage: make TARGET [SETTING=value ...]\n\ntargets:"; for (i = 1; i <= t; i++) show(targets[i]); \
	    print "\nsettings every stage reads:"; for (i = 1; i <= s; i++) show(settings[i]) }' $(MAKEFILE_LIST)

setup: $(SETUP) ## create .venv, install synsetforge and provision WordNet 3.0

$(SETUP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(PY) -m pipeline wordnet --provision
	touch $@

synsets: $(SETUP) ## choose the classes: SUBSET=ilsvrc1k|imagenet21k|demo, or ROOT=<wnid> / WNIDS=<file>
	$(PY) -m pipeline synsets $(STAGE_ARGS) $(SYNSETS_ARGS)

candidates: $(SETUP) ## candidate URLs: SOURCE=urllist URLS=<file> | commons | openverse | flickr | demo (DEMO_HOST=1: the demo image host)
	$(call exists,$(DATA)/$(SUBSET)/synsets.parquet) || $(MAKE) --no-print-directory synsets
	$(SERVE_DEMO) $(PY) -m pipeline candidates $(STAGE_ARGS) $(CANDIDATES_ARGS)

download: $(SETUP) ## fetch and verify every candidate into images/ and ledger/ (runs candidates when missing)
	$(call exists,$(DATA)/$(SUBSET)/candidates) || $(MAKE) --no-print-directory candidates
	$(SERVE_DEMO) $(PY) -m pipeline download $(STAGE_ARGS) $(DOWNLOAD_ARGS)

dedupe: $(SETUP) ## exact and near-duplicate clusters of images/ (or FOLDER=<dir>): dedupe/ (runs download when missing)
	test -n '$(FOLDER)' || $(call exists,$(DATA)/$(SUBSET)/images) || $(MAKE) --no-print-directory download
	$(PY) -m pipeline dedupe $(STAGE_ARGS) $(DEDUPE_ARGS)

annotate-export: $(SETUP) ## a round of annotation HITs: annotation/round-<ROUND>/ (HIT_FORMATS=mturk,labelstudio,jsonl IMAGE_BASE_URL=...); TASK=draw|quality|coverage: box tasks
	$(PY) -m pipeline annotate-export $(STAGE_ARGS) $(EXPORT_ARGS)

annotate-serve: $(SETUP) ## our own labelling page for a round, on http://127.0.0.1:8650 (ROUND= HOST= PORT=); TASK=draw|quality|coverage: a box round's tasks
	$(PY) -m pipeline annotate-serve $(STAGE_ARGS) $(SERVE_ARGS)

annotate-simulate: $(SETUP) ## simulated workers answer a round: annotation/round-<ROUND>/results-simulated.csv (TASK=draw|quality|coverage: a box round's; SCORE=1: score the crowd's boxes against the truth)
	$(SIMULATE_HOST) $(PY) -m pipeline annotate-simulate $(STAGE_ARGS) $(SIMULATE_ARGS)

annotate-import: $(SETUP) ## import RESULTS=<file> (MTurk CSV, Label Studio JSON, our JSONL) and aggregate: annotation/labels.parquet (box answers: annotation/boxes.parquet)
	test -n '$(RESULTS)' || { echo "make annotate-import needs RESULTS=<file>"; exit 2; }
	$(PY) -m pipeline annotate-import $(STAGE_ARGS) $(IMPORT_ARGS)

manifests: $(SETUP) ## train/val/test manifests and classes: manifests/*.parquet (UNVERIFIED=1 without annotation)
	$(PY) -m pipeline manifests $(STAGE_ARGS) $(MANIFESTS_ARGS)

validate: $(SETUP) ## check the manifests: labels, counts, every image decodes, no copies across splits
	$(PY) -m pipeline validate $(STAGE_ARGS) $(call flag,NO_DECODE,--no-decode)

card: $(SETUP) ## DATASET_CARD.md and card/*.png: what the dataset is, how it was made, its figures
	$(PY) -m pipeline card $(STAGE_ARGS) $(call opt,SAMPLES_PER_CLASS,--samples-per-class) $(call opt,SAMPLE_CLASSES,--sample-classes)

export: $(SETUP) ## the manifests' images as FORMAT=hf|ilsvrc|wds under export/<format>/ (TREE=folders|flat|kaggle LINK=1 PREFIX= SHARD_MB=)
	test -n '$(FORMAT)' || { echo "make export needs FORMAT=hf, ilsvrc or wds"; exit 2; }
	$(PY) -m pipeline export $(STAGE_ARGS) $(DATASET_EXPORT_ARGS)

import: $(SETUP) ## bring in a dataset built elsewhere: SRC=<dir> LAYOUT=imagefolder|ilsvrc SUBSET=<name>
	test -n '$(SRC)' || { echo "make import needs SRC=<folder>"; exit 2; }
	$(PY) -m pipeline import $(STAGE_ARGS) $(DATASET_IMPORT_ARGS)

evaluate: $(SETUP) ## score SUBMISSION=<csv> (Kaggle's ImageId,PredictionString) on SPLIT=val|test as ILSVRC did: evaluations/<split>-<name>.json
	test -n '$(SUBMISSION)' || { echo "make evaluate needs SUBMISSION=<csv>"; exit 2; }
	$(PY) -m pipeline evaluate $(STAGE_ARGS) --submission '$(SUBMISSION)' $(call opt,SPLIT,--split)

train: $(SETUP) ## AlexNet baseline: runs/<NAME>/metrics.json (EPOCHS= BATCH= LR= SIZE= ARCH= BOX_WEIGHT= RESUME=1 SKIP_BAD=1 PACKED=<dir> NPROC=<n>: torchrun, one process per GPU, BATCH each)
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install --quiet --disable-pip-version-check -e '.[train]'
	test -n '$(PACKED)' || $(call exists,$(DATA)/$(SUBSET)/manifests/train.parquet) || $(MAKE) --no-print-directory manifests
	$(TRAIN_RUN) train --data '$(DATA)' --subset '$(SUBSET)' $(TRAIN_ARGS)

predict: $(SETUP) ## a finished run's top-5 classes (and box) for IMAGES='<files>' (RUN=<run folder>, or NAME=)
	test -n '$(IMAGES)' || { echo "make predict needs IMAGES=<image files>"; exit 2; }
	$(PY) -m baseline predict --data '$(DATA)' --subset '$(SUBSET)' $(call opt,NAME,--name) $(call opt,RUN,--run) $(IMAGES)

summary: $(SETUP) ## one table of every stage's figures for SUBSET
	@$(PY) -m pipeline summary --data '$(DATA)' --subset '$(SUBSET)'

demo: $(SETUP) ## run every stage that exists on the offline demo subset
	$(MAKE) --no-print-directory synsets SUBSET=demo
	$(MAKE) --no-print-directory download SUBSET=demo
	$(MAKE) --no-print-directory dedupe SUBSET=demo
	for round in $(DEMO_ROUNDS); do \
	  $(MAKE) --no-print-directory annotate-export SUBSET=demo ROUND=$$round && \
	  $(MAKE) --no-print-directory annotate-simulate SUBSET=demo ROUND=$$round && \
	  $(MAKE) --no-print-directory annotate-import SUBSET=demo RESULTS='$(DATA)/demo/annotation/round-'$$round/results-simulated.csv \
	  || exit 1; done
	$(MAKE) --no-print-directory manifests SUBSET=demo VAL_N=5 TEST_N=5 MIN_TRAIN=10
	$(DEMO_BOX_LOOP)
	$(MAKE) --no-print-directory annotate-simulate SUBSET=demo SCORE=1
	$(MAKE) --no-print-directory manifests SUBSET=demo VAL_N=5 TEST_N=5 MIN_TRAIN=10
	$(MAKE) --no-print-directory validate SUBSET=demo
	$(MAKE) --no-print-directory export SUBSET=demo FORMAT=ilsvrc
	$(MAKE) --no-print-directory train SUBSET=demo BOX_WEIGHT=$(DEMO_BOX_WEIGHT)
	$(MAKE) --no-print-directory export SUBSET=demo FORMAT=hf
	$(MAKE) --no-print-directory card SUBSET=demo
	@$(MAKE) --no-print-directory summary SUBSET=demo

test: $(SETUP) ## the test suite, every test (CI runs this)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(SETUP) ## the inner loop: every test not marked slow (AlexNet runs, DDP, browser, S3, Ray)
	$(PY) -m pytest -m 'not slow' $(PYTEST_ARGS)

lint: $(SETUP) ## ruff: lint and format check (make format rewrites)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(SETUP) ## ruff: fix what lint can fix and format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(SETUP) ## print the speed figures of bench/
	$(PY) bench/synsets.py
	$(PY) bench/download_vs_img2dataset.py
	$(PY) bench/download_kill_resume.py
	$(PY) bench/dedupe_quality.py --tiny
	$(PY) bench/dedupe_speed.py
	$(PY) bench/annotation_quality.py
	$(PY) bench/box_consensus.py
	$(PY) bench/manifests_speed.py
	$(PY) bench/train_tiny_imagenet.py
	$(PY) bench/crowdkit_peer.py

# make clean removes $(DATA)/$(SUBSET) and nothing else: SUBSET must name one folder (an empty
# one would name the whole data root). A refusal is make's one line `*** ...  Stop.`, exit 2.
CLEAN_REFUSAL = $(or \
	$(if $(strip $(DATA)),,DATA is empty), \
	$(if $(strip $(SUBSET)),,SUBSET is empty and would name all of $(DATA)), \
	$(if $(filter-out 1,$(words $(SUBSET))),SUBSET '$(SUBSET)' holds a space), \
	$(if $(findstring /,$(SUBSET)),SUBSET '$(SUBSET)' holds a '/'), \
	$(if $(findstring ..,$(SUBSET)),SUBSET '$(SUBSET)' holds '..'), \
	$(if $(filter .% -%,$(SUBSET)),SUBSET '$(SUBSET)' starts with '.' or '-'), \
	$(if $(findstring ',$(SUBSET)),SUBSET holds a quote))

clean: ## remove the data folder of SUBSET (nothing else: SUBSET must name one folder)
	$(if $(CLEAN_REFUSAL),$(error make clean: $(CLEAN_REFUSAL) (it removes DATA/SUBSET, one dataset folder)))
	rm -rf '$(DATA)/$(strip $(SUBSET))'
