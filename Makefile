# Entry points for users, reviewers and CI. The first target that needs Python builds .venv
# from requirements.lock (no other set-up step).
#   make test                      the test suite (CPU, tiny data made by the tests)
#   make reproduce [PROFILE=quick] the experiments of experiments/ then every figure (default: paper)
#   make figures   [PROFILE=quick] the figures again, from the logged results only
PYTHON   ?= python3.11
VENV     ?= .venv
PROFILE  ?= paper
OUTPUT   ?= outputs
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
RUN_DIR   = $(OUTPUT)/reproduce/$(PROFILE)
FIG_DIR   = figures/$(PROFILE)
ROBUSTLAB = $(BIN)/robustlab
PLOT      = $(BIN)/robustlab-plot

# The scheme sweep and the readings of "alter a pixel" (experiments/rpr_mnist.md); the paper
# profile measures them on 2,000 test points to keep them to minutes.
SWEEP          = perturbation=pixels,gaussian,salt_pepper seed=0,1,2
SWEEP_paper    = rpr.test_points=2000
READINGS       = perturbation.count=uniform,exact perturbation.value=uniform,binary
READINGS_paper = rpr.test_points=2000

.PHONY: test reproduce figures benchmark check-profile clean-venv

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || \
		{ echo "error: robustlab needs Python 3.11 as '$(PYTHON)'; install it or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q

check-profile:
	@case "$(PROFILE)" in quick|paper) ;; *) echo "error: PROFILE must be quick or paper, got '$(PROFILE)'"; exit 2;; esac

reproduce: check-profile $(STAMP)
	$(ROBUSTLAB) experiment=rpr_mnist profile=$(PROFILE) hydra.run.dir=$(RUN_DIR)/rpr_mnist
	rm -rf $(RUN_DIR)/rpr_sweep $(RUN_DIR)/rpr_readings
	$(ROBUSTLAB) -m experiment=rpr_sweep profile=$(PROFILE) $(SWEEP) $(SWEEP_$(PROFILE)) hydra.sweep.dir=$(RUN_DIR)/rpr_sweep
	$(ROBUSTLAB) -m experiment=rpr_sweep profile=$(PROFILE) checkpoint=$(RUN_DIR)/rpr_mnist/M.ckpt \
		$(READINGS) $(READINGS_$(PROFILE)) hydra.sweep.dir=$(RUN_DIR)/rpr_readings
	$(MAKE) --no-print-directory figures PROFILE=$(PROFILE)

figures: check-profile $(STAMP)
	$(PLOT) rpr --run $(RUN_DIR)/rpr_mnist --out $(FIG_DIR)
	$(PLOT) sweep --multirun $(RUN_DIR)/rpr_sweep --out $(FIG_DIR) --name sweep_schemes
	$(PLOT) sweep --multirun $(RUN_DIR)/rpr_readings --out $(FIG_DIR) --name pixel_readings

benchmark: $(STAMP)
	$(BIN)/python benchmarks/rpr_throughput.py

clean-venv:
	rm -rf $(VENV)
