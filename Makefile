# Two commands on a fresh machine: `make repro` (the default pipeline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: repro test install bench ablations grid pretrain clean

$(BIN)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/.installed

repro: install
	test -d .dvc || $(BIN)/dvc init --quiet
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro
	@echo "report: reports/report.md   metrics: $(BIN)/dvc metrics show"

test: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_step.py

ablations: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python benchmarks/ablations.py

JOBS ?= 1
ONLY ?= ablations
grid: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python benchmarks/grid.py --jobs $(JOBS) --only $(ONLY)

# The OpenMoji stand-in CLIP's recipe (about an hour on 2 CPU cores; minutes on a GPU). Its result,
# weights/openmoji-tiny.safetensors + .json, is committed: `make repro` only loads it.
pretrain: install
	$(BIN)/python -m pipeline.pretrain
