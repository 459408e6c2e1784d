# Two commands on a fresh machine: `make repro` (the default pipeline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: repro test test-fast lint format install bench ablations grid pretrain pretrain-vocabulary wordnet debian-wordnet gpu-wheels clean

# --no-cache-dir: on x86_64 torch is a CUDA build of several GB; a wheel cache would hold a second copy of
# it on disk (a CI run once ran out of space during this install)
$(BIN)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-cache-dir -r requirements.lock
	$(BIN)/pip install --quiet --no-cache-dir --no-deps -e .
	touch $@

install: $(BIN)/.installed

repro: install
	test -d .dvc || $(BIN)/dvc init --quiet
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro
	@echo "report: reports/report.md   metrics: $(BIN)/dvc metrics show"

# TEST_JOBS pytest-xdist workers, one test file each (a file's shared fixtures are built once); the end-to-end
# files start first (tests/conftest.py). Two workers on two cores: the stages' startup is single-threaded.
TEST_JOBS ?= 2
PYTEST_XDIST = -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

test: install lint debian-wordnet
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q $(PYTEST_XDIST)

# ruff, configured in pyproject.toml: lint rules and the formatter's layout (`make format` applies it)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# the unit tests alone (no end-to-end `dvc repro`, no fresh clone): a couple of minutes
test-fast: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q $(PYTEST_XDIST) -m "not slow"

# WordNet 3.0 offline for NegLabel and CSP on ImageNet: Debian's database (apt-get install wordnet-base
# wordnet-sense-index) laid out as NLTK's data folder, with the lexnames table Debian lacks written beside it.
# Use it with -S neglabel.wordnet_dir=$(WORDNET_DIR). WORDNET_SOURCE: another WordNet 3.0 dict/ folder.
# `make test` installs Debian's two packages itself where it can (root with apt-get); elsewhere the tests on WordNet
# 3.0 skip and say why.
debian-wordnet:
	@if [ ! -f /usr/share/wordnet/index.sense ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's wordnet-base and wordnet-sense-index (WordNet 3.0) for the tests"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wordnet-base wordnet-sense-index >/dev/null 2>&1 \
	    || (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	        wordnet-base wordnet-sense-index >/dev/null 2>&1)) \
	    || echo "wordnet-base not installed: the tests on WordNet 3.0 will be skipped"; \
	fi
WORDNET_DIR ?= data/nltk
WORDNET_SOURCE ?= /usr/share/wordnet
wordnet: install
	$(BIN)/python -c 'from negprompt.methods import wordnet; print(wordnet.prepare("$(WORDNET_DIR)", "$(WORDNET_SOURCE)"))'

# the wheels benchmarks/speed/gpu_check.sh installs on a GPU machine without network (CPython 3.12, git-ignored)
gpu-wheels: install
	$(BIN)/python benchmarks/speed/gpu_wheels.py

bench: install
	$(BIN)/python benchmarks/speed/bench_step.py

ablations: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python benchmarks/experiments/ablations.py

# ONLY: a paper table (table2, table3, table4 = table2's runs read for ID top-1, table5), ours (our ImageNet rows), or
# the OpenMoji groups ablations (the default: offline, on this machine) and protocol (benchmarks/experiments/grid.yaml).
# SET: space-separated KEY=VALUE overrides of every row, e.g. SET="data.root=/data/imagenet" (docs/imagenet.md).
# DRY_RUN=1 lists the rows and their -S settings without queuing. EXECUTOR=queue (DVC's queue on this machine), slurm
# (one Slurm job per row) or local (the same jobs as local processes): docs/cluster.md. JOBS is the queue's workers;
# with slurm, empty lets Slurm schedule every row at once.
JOBS ?= 1
ONLY ?= ablations
SET ?=
DRY_RUN ?=
EXECUTOR ?= queue
grid: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python benchmarks/experiments/grid.py --executor $(EXECUTOR) $(if $(JOBS),--jobs $(JOBS)) --only $(ONLY) $(foreach s,$(SET),--set '$(s)') $(if $(DRY_RUN),--dry-run)

# The OpenMoji stand-in CLIP's recipe (pipeline/pretrain.py over src/negprompt_standin/) after phase 1, five runs
# from the committed phase-1 checkpoint (about 160 minutes on 2 CPU cores, benchmarks/RESULTS.md): web-like
# captions, then twice with scenes (objects small in front of places and patterns), then twice with plants among
# the scenes. Its result, weights/openmoji-tiny.safetensors + .json, is committed: `make repro` only loads it.
# Phase 1 from scratch: docs/benchmark.md, "The stand-in CLIP, pretrained once and committed".
# PRETRAIN_ARGS: options for every run, e.g. "--workers 15" on a GPU machine with 16 cores (rendering in
# worker processes keeps the GPU fed; on 2 CPU cores training needs the cores itself)
PRETRAIN_ARGS ?=
PRETRAIN := $(BIN)/python -m pipeline.pretrain $(PRETRAIN_ARGS)
# The web run and the four scene runs, from the checkpoint $(1): each run but the last writes $(2)<run>.safetensors,
# the last takes the options $(3) (none: --out's default, the shipped weights); $(4): options for all five.
define WEB_AND_SCENES
	$(PRETRAIN) $(4) --init $(1) --web-steps 5000 --out $(2)web.safetensors
	$(PRETRAIN) $(4) --init $(2)web.safetensors --web-steps 3000 --web-scene 0.3 --seed 1 --out $(2)scene1.safetensors
	$(PRETRAIN) $(4) --init $(2)scene1.safetensors --web-steps 3000 --web-scene 0.3 --seed 2 --out $(2)scene2.safetensors
	$(PRETRAIN) $(4) --init $(2)scene2.safetensors --web-steps 3000 --web-scene 0.3 --scene-sets place,texture,plant --seed 3 --out $(2)scene3.safetensors
	$(PRETRAIN) $(4) --init $(2)scene3.safetensors --web-steps 3000 --web-scene 0.3 --scene-sets place,texture,plant --seed 4 $(3)
endef
pretrain: install
	mkdir -p build/pretrain
	$(call WEB_AND_SCENES,weights/openmoji-tiny-phase1.safetensors,build/pretrain/,)

# The whole-vocabulary design: every concept of the OpenMoji vocabulary (resources/openmoji_vocabulary.tsv) captioned
# from phase 1 on (from scratch), then `make pretrain`'s web and scene runs; each run's manifest says whether it
# passes the shipping rule (docs/benchmark.md). About 4 hours on 2 CPU cores; about 23 minutes on an H200 with
# 16 cores and PRETRAIN_ARGS="--workers 15" (benchmarks/RESULTS.md). Writes build/pretrain/vocab-*.safetensors and .json.
V := build/pretrain/vocab
pretrain-vocabulary: install
	mkdir -p build/pretrain
	$(PRETRAIN) --vocabulary --web-steps 0 --out $(V)-phase1.safetensors
	$(call WEB_AND_SCENES,$(V)-phase1.safetensors,$(V)-,--out $(V)-scene4.safetensors,--vocabulary)
