# Entry points for users, reviewers and CI. The first target that needs Python builds .venv
# from requirements.lock (no other set-up step).
PYTHON   ?= python3.11
VENV     ?= .venv
PROFILE  ?= paper
OUTPUT   ?= outputs
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
RUN_DIR   = $(OUTPUT)/reproduce/$(PROFILE)

.PHONY: test reproduce figures benchmark clean-venv

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || \
		{ echo "error: robustlab needs Python 3.11 as '$(PYTHON)'; install it or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The paper's pipeline (train M, RPR, robust balanced subset, train M_R, RPR) then every figure.
reproduce: $(STAMP)
	$(BIN)/robustlab experiment=rpr_mnist profile=$(PROFILE) hydra.run.dir=$(RUN_DIR)/rpr_mnist
	$(BIN)/robustlab-plot rpr --run $(RUN_DIR)/rpr_mnist --out figures/$(PROFILE)

figures: $(STAMP)
	$(BIN)/robustlab-plot rpr --run $(RUN_DIR)/rpr_mnist --out figures/$(PROFILE)

benchmark: $(STAMP)
	$(BIN)/python benchmarks/rpr_throughput.py

clean-venv:
	rm -rf $(VENV)
