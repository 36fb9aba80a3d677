# Entry points for users, reviewers and CI. The first target that needs Python builds .venv
# from requirements.lock (no other set-up step).
#   make test                      the test suite (CPU, tiny data made by the tests)
#   make lint                      ruff format --check, ruff check and lint-imports (rules in pyproject.toml)
#   make reproduce [PROFILE=quick] the experiments of experiments/ then every figure (default: paper)
#   make figures   [PROFILE=quick] the figures again, from the logged results only (ONLY=rpr_mnist: one experiment)
#   make status    [PROFILE=quick] every job of make reproduce: done, missing, failed or stale, and what makes it
#                  (make reproduce resumes: finished jobs are skipped; FORCE=1 runs them again; ONLY=<experiment
#                  or run group>, comma-separated, runs only those)
#   make results                   every run under $(OUTPUT) in one table (outputs/results/results.csv)
#   make paper                     claims tables, paper/REPRODUCTION.md (and report.pdf with latexmk), from the runs
#                                  under $(OUTPUT) and the archived ones in paper/runs (a local finished run wins)
#   make archive   [PROFILE=paper] copy the report files of the finished runs (no checkpoints) into paper/runs, to
#                                  commit: the paper profile runs over several sessions, whose outputs/ may not last
#   make gpu-check                 on a GPU machine: the gpu tests, quick rpr_mnist and the RPR benchmark there (<= 8 min)
#   make extras                    the optional extras (mlflow, wandb, art) from requirements-*.lock
#   make crosscheck                the project's FGSM and PGD against ART's on a small trained CNN (needs extras)
PYTHON   ?= python3.11
VENV     ?= .venv
PROFILE  ?= paper
# Runs, the model cache and the results store all live under OUTPUT ($ROBUSTLAB_OUTPUT if set).
OUTPUT   := $(or $(OUTPUT),$(ROBUSTLAB_OUTPUT),outputs)
export ROBUSTLAB_OUTPUT := $(OUTPUT)
FIGURES  ?= figures
ARCHIVE  ?= paper/runs
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
# glibc's malloc hands every freed tensor buffer above its mmap threshold back to the kernel, so RPR's
# per-retry batches fault their pages in again each step (a quick rpr_mnist job: 16.6 s of system time
# in 26.1 s). Serving them from the heap, never trimmed, cuts about a third of the job: same numbers, byte
# for byte; peak memory about a fifth higher (benchmarks/malloc_env.py). glibc only; set them to override.
export MALLOC_MMAP_THRESHOLD_ ?= 1073741824
export MALLOC_TRIM_THRESHOLD_ ?= 4294967296

.PHONY: test reproduce figures status results paper archive benchmark check-profile check-force clean-venv data-fashion-mnist gpu-check extras crosscheck

# Fashion-MNIST from Debian's package dataset-fashion-mnist (no internet needed), unpacked into
# torchvision's layout under DATA_ROOT.
DATA_ROOT ?= $(or $(ROBUSTLAB_DATA),data)
DEBIAN_FASHION := /usr/share/datasets/fashion-mnist

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || \
		{ echo "error: robustlab needs Python 3.11 as '$(PYTHON)'; install it or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Style and structure (rules in pyproject.toml): formatting, lint rules, and the import contracts.
.PHONY: lint
lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

check-profile:
	@case "$(PROFILE)" in quick|paper) ;; *) echo "error: PROFILE must be quick or paper, got '$(PROFILE)'"; exit 2;; esac

check-force:
	@case "$(FORCE)" in ''|0|1) ;; *) echo "error: FORCE must be 0 or 1, got '$(FORCE)'"; exit 2;; esac

# The commands live in experiments/*.md (one block per experiment); robustlab-reproduce runs them.
# Killed or failed, it resumes where it stopped: rerun the same command (FORCE=1: every job again).
reproduce: check-profile check-force $(STAMP)
	$(BIN)/robustlab-reproduce run --profile $(PROFILE) --output $(OUTPUT) --figures-root $(FIGURES) $(if $(ONLY),--only $(ONLY)) $(if $(FORCE),--force $(FORCE))
	$(MAKE) --no-print-directory results paper

figures: check-profile $(STAMP)
	$(BIN)/robustlab-reproduce figures --profile $(PROFILE) --output $(OUTPUT) --figures-root $(FIGURES) $(if $(ONLY),--only $(ONLY))

status: check-profile check-force $(STAMP)
	$(BIN)/robustlab-reproduce status --profile $(PROFILE) --output $(OUTPUT) $(if $(ONLY),--only $(ONLY))

results: $(STAMP)
	$(BIN)/robustlab-results --root $(OUTPUT) --out $(OUTPUT)/results

# Optional integrations (logger=mlflow, logger=wandb, the ART cross-check), pinned like the core.
EXTRAS_LOCKS := requirements-mlflow.lock requirements-wandb.lock requirements-art.lock
extras: $(STAMP)
	$(BIN)/pip install --quiet -r requirements.lock $(addprefix -r ,$(EXTRAS_LOCKS))

# FGSM and PGD against the Adversarial Robustness Toolbox: share of identical adversarial predictions per eps.
crosscheck: $(STAMP)
	$(BIN)/python -m robustlab.crosscheck

# The claims tables and paper/REPRODUCTION.md always; the PDF only where latexmk is installed.
paper: $(STAMP)
	$(BIN)/robustlab-report --root $(OUTPUT) --archive $(ARCHIVE) --figures-root $(FIGURES) --readme README.md
	@if command -v latexmk >/dev/null; then cd paper && latexmk -pdf -interaction=nonstopmode -quiet report.tex; \
	else echo "skipped: latexmk not installed, so no paper/report.pdf (paper/REPRODUCTION.md has the same tables and figures)"; fi

# The report files of PROFILE's finished runs into ARCHIVE (robustlab.report.archive), then the report of that profile.
archive: check-profile $(STAMP)
	$(BIN)/robustlab-report --root $(OUTPUT) --archive $(ARCHIVE) --profile $(PROFILE) --save-runs --figures-root $(FIGURES) --readme README.md

# Speed, not correctness (benchmarks/README.md): tables on stdout, CSV/JSON in benchmarks/results/.
benchmark: $(STAMP)
	$(BIN)/python benchmarks/rpr_throughput.py
	$(BIN)/python benchmarks/rpr_scaling.py
	$(BIN)/python benchmarks/lightning_overhead.py
	$(BIN)/python benchmarks/peak_fraction.py

# What a lent GPU must show (benchmarks/gpu_check.py); one line and exit 0 without CUDA.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

data-fashion-mnist:
	@test -d $(DEBIAN_FASHION) || { echo "error: $(DEBIAN_FASHION) not found; run 'apt-get install dataset-fashion-mnist' first"; exit 2; }
	mkdir -p $(DATA_ROOT)/FashionMNIST/raw
	for f in $(DEBIAN_FASHION)/*-ubyte.gz; do gunzip -c $$f > $(DATA_ROOT)/FashionMNIST/raw/$$(basename $$f .gz); done

clean-venv:
	rm -rf $(VENV)
