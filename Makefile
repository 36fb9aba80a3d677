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
# The blog's four linear models (shared/seeds/002), three seeds each.
LINEAR         = model.epsilon=0,0.1,0.2,0.3 seed=0,1,2
# DCGAN (experiments/dcgan.md): CIFAR-10 only when its files are under the data root (never downloaded here).
CIFAR_DIR      = $(DATA_ROOT)/cifar-10-batches-py
HAVE_CIFAR     = test -f $(CIFAR_DIR)/data_batch_1 && test -f $(CIFAR_DIR)/test_batch && test -f $(CIFAR_DIR)/batches.meta

.PHONY: test reproduce figures benchmark check-profile clean-venv data-fashion-mnist

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

check-profile:
	@case "$(PROFILE)" in quick|paper) ;; *) echo "error: PROFILE must be quick or paper, got '$(PROFILE)'"; exit 2;; esac

reproduce: check-profile $(STAMP)
	$(ROBUSTLAB) experiment=rpr_mnist profile=$(PROFILE) hydra.run.dir=$(RUN_DIR)/rpr_mnist
	rm -rf $(RUN_DIR)/rpr_sweep $(RUN_DIR)/rpr_readings $(RUN_DIR)/linear_robust
	$(ROBUSTLAB) -m experiment=rpr_sweep profile=$(PROFILE) $(SWEEP) $(SWEEP_$(PROFILE)) hydra.sweep.dir=$(RUN_DIR)/rpr_sweep
	$(ROBUSTLAB) -m experiment=rpr_sweep profile=$(PROFILE) checkpoint=$(RUN_DIR)/rpr_mnist/M.ckpt \
		$(READINGS) $(READINGS_$(PROFILE)) hydra.sweep.dir=$(RUN_DIR)/rpr_readings
	$(ROBUSTLAB) -m experiment=linear_robust profile=$(PROFILE) $(LINEAR) hydra.sweep.dir=$(RUN_DIR)/linear_robust
	$(ROBUSTLAB) experiment=cnn_attack profile=$(PROFILE) checkpoints.M=$(RUN_DIR)/rpr_mnist/M.ckpt \
		checkpoints.M_R=$(RUN_DIR)/rpr_mnist/M_R.ckpt hydra.run.dir=$(RUN_DIR)/cnn_attack
	rm -rf $(RUN_DIR)/dcgan_cifar10
	$(ROBUSTLAB) experiment=dcgan_mnist profile=$(PROFILE) quality.classifier=$(RUN_DIR)/rpr_mnist/M.ckpt hydra.run.dir=$(RUN_DIR)/dcgan_mnist
	@if $(HAVE_CIFAR); then \
		$(ROBUSTLAB) experiment=dcgan_cifar10 profile=$(PROFILE) data.download=false hydra.run.dir=$(RUN_DIR)/dcgan_cifar10; \
	else echo "skipped: CIFAR-10 not found in $(CIFAR_DIR) (experiment=dcgan_cifar10)"; fi
	$(ROBUSTLAB) experiment=rpr_gan_augment profile=$(PROFILE) checkpoint=$(RUN_DIR)/rpr_mnist/M.ckpt hydra.run.dir=$(RUN_DIR)/rpr_gan_augment
	$(MAKE) --no-print-directory figures PROFILE=$(PROFILE)

figures: check-profile $(STAMP)
	$(PLOT) rpr --run $(RUN_DIR)/rpr_mnist --out $(FIG_DIR)
	$(PLOT) sweep --multirun $(RUN_DIR)/rpr_sweep --out $(FIG_DIR) --name sweep_schemes
	$(PLOT) sweep --multirun $(RUN_DIR)/rpr_readings --out $(FIG_DIR) --name pixel_readings
	$(PLOT) linear --multirun $(RUN_DIR)/linear_robust --out $(FIG_DIR)
	$(PLOT) dcgan --run $(RUN_DIR)/dcgan_mnist --out $(FIG_DIR)
	@if test -f $(RUN_DIR)/dcgan_cifar10/metrics.json; then \
		$(PLOT) dcgan --run $(RUN_DIR)/dcgan_cifar10 --out $(FIG_DIR) --prefix dcgan_cifar10; \
	else echo "skipped: no dcgan_cifar10 run in $(RUN_DIR) (CIFAR-10 not found in $(CIFAR_DIR))"; fi
	$(PLOT) gan-augment --run $(RUN_DIR)/rpr_gan_augment --out $(FIG_DIR)

benchmark: $(STAMP)
	$(BIN)/python benchmarks/rpr_throughput.py

data-fashion-mnist:
	@test -d $(DEBIAN_FASHION) || { echo "error: $(DEBIAN_FASHION) not found; run 'apt-get install dataset-fashion-mnist' first"; exit 2; }
	mkdir -p $(DATA_ROOT)/FashionMNIST/raw
	for f in $(DEBIAN_FASHION)/*-ubyte.gz; do gunzip -c $$f > $(DATA_ROOT)/FashionMNIST/raw/$$(basename $$f .gz); done

clean-venv:
	rm -rf $(VENV)
