"""The blog's experiment (shared/seeds/002): a linear classifier of MNIST zeros vs ones, trained with
the regular (eps = 0) or the robust hinge (eps > 0), then attacked with the exact l-inf worst case
over a grid of epsilons. One run = one model (one epsilon, one seed); sweep epsilons and seeds with
Hydra's multirun. Everything lands in the run directory:

  metrics.json        accuracies, where test accuracy falls below 50%, timings, the resolved config
  attack_curve.csv    test accuracy per epsilon: exact attack clipped and not, FGSM (a check)
  weights.npz         w as an image (28 x 28) and b
  misclassified.npz   per epsilon of attack.misclassified_eps: the misclassified attacked test
                      images closest to the boundary (smallest |score| first) and every
                      misclassified score (the blog's logit-distribution figure)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from robustlab import results
from robustlab.config import build, grid_spec
from robustlab.data.binary import BinaryDataModule
from robustlab.errors import require
from robustlab.models.linear_hinge import LinearHinge
from robustlab.pipelines.devices import runtime_info
from robustlab.pipelines.resume import resume_from_config
from robustlab.pipelines.training import fit_classifier, timed
from robustlab.robustness.attacks import (
    Attack,
    accuracy_under_attack,
    attacked,
    clean_accuracy,
    correct,
    crossing,
    linspace_grid,
)
from robustlab.runs import layout

log = logging.getLogger(__name__)

PIPELINE = "linear_robust"
CURVE, WEIGHTS, MISCLASSIFIED = layout.ATTACK_CURVE, layout.WEIGHTS, layout.MISCLASSIFIED


class LinearRobust:
    """One run; ``cfg`` is the resolved Hydra config (experiment=linear_robust)."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir, self.timings = cfg, Path(run_dir), {}
        a = cfg.attack
        self.grid = linspace_grid(grid_spec(a.epsilons))
        self.misclassified_grid = linspace_grid(grid_spec(a.misclassified_eps))
        require(isinstance(a.clip, bool), f"attack.clip must be true or false, got {a.clip}")
        require(
            isinstance(a.misclassified_keep, int) and a.misclassified_keep >= 1,
            f"attack.misclassified_keep must be an integer >= 1, got {a.misclassified_keep}",
        )
        require(
            isinstance(a.batch_size, int) and a.batch_size >= 1,
            f"attack.batch_size must be an integer >= 1, got {a.batch_size}",
        )
        self.data = build(cfg.data)
        require(
            isinstance(self.data, BinaryDataModule),
            f"pipeline {PIPELINE} needs a binary data module (data=mnist_binary), got {type(self.data).__name__}",
        )
        self.model = build(cfg.model, input_shape=self.data.input_shape)
        require(
            isinstance(self.model, LinearHinge),
            f"pipeline {PIPELINE} needs model=linear_hinge, got {type(self.model).__name__}",
        )
        # The headline attack: the exact worst case, clipped to [0, 1] or not as configured.
        self.attack = Attack("exact", clip=a.clip)

    def run(self) -> dict:
        started = time.perf_counter()
        self.data.setup()  # reads the data (or fails in one line) before any training
        with timed(self.timings, "train"):
            resume = resume_from_config(self.cfg)
            fit_classifier(
                self.model,
                self.data,
                self.cfg.trainer,
                self.run_dir,
                "linear",
                resume=resume,
                logger_cfg=self.cfg.get("logger"),
            )
        model = self.model.cpu().eval()  # a linear model is evaluated on the CPU: a GPU gains nothing at this size
        with timed(self.timings, "attack"):
            curves = self.attack_curves(model)
            self.save_misclassified(model)
        results.write_table(self.run_dir / CURVE, {"eps": self.grid, **curves})
        shape = self.data.input_shape
        results.write_arrays(
            self.run_dir / WEIGHTS, w=model.w.detach().reshape(shape).squeeze(0).numpy(), b=model.b.detach().numpy()
        )
        metrics = self.metrics(model, curves)
        log.info(
            "eps=%g: test accuracy %.4f, attacked test accuracy < 50%% from eps %s (%s attack)",
            model.epsilon,
            metrics["test_accuracy"],
            metrics["attack"]["eps_below_50"],
            self.attack.label,
        )
        metrics["runtime"] = runtime_info(model)  # strings: device and library versions
        metrics["timings_s"], metrics["wall_time_s"] = self.timings, round(time.perf_counter() - started, 1)
        results.write_metrics(self.run_dir, metrics)
        return metrics

    def attack_curves(self, model: LinearHinge) -> dict[str, np.ndarray]:
        """Test accuracy per epsilon: the exact attack with and without clipping, and FGSM (which must equal
        the exact attack with the same clipping on a linear model: a check of the generic attack code)."""
        a, test = self.cfg.attack, self.data.test
        variants = {"exact_unclipped": Attack("exact", clip=False), "exact_clipped": Attack("exact", clip=True)}
        if a.fgsm:
            variants[f"fgsm_{'clipped' if a.clip else 'unclipped'}"] = Attack("fgsm", clip=a.clip)
        return {
            name: accuracy_under_attack(model, test.images, test.labels, self.grid, attack, a.batch_size)
            for name, attack in variants.items()
        }

    def save_misclassified(self, model: LinearHinge) -> None:
        keep, test = self.cfg.attack.misclassified_keep, self.data.test
        shape = (len(self.misclassified_grid), keep, *self.data.input_shape)
        out = {
            "eps": self.misclassified_grid,
            "images": np.full(shape, np.nan, np.float32),
            "clean": np.full(shape, np.nan, np.float32),
            "scores": np.full(shape[:2], np.nan, np.float32),
            "labels": np.zeros(shape[:2], np.int64),
            "index": np.full(shape[:2], -1, np.int64),
            "count": np.zeros(len(self.misclassified_grid), np.int64),
        }
        all_scores, all_eps = [], []
        for e, eps in enumerate(self.misclassified_grid):
            x_adv, scores = attacked(model, test.images, test.labels, eps, self.attack, self.cfg.attack.batch_size)
            wrong = torch.nonzero(~correct(scores, test.labels)).flatten()
            closest = wrong[torch.argsort(scores[wrong].abs(), stable=True)][:keep]  # nearest the boundary first
            n = len(closest)
            out["images"][e, :n], out["clean"][e, :n] = x_adv[closest].numpy(), test.images[closest].numpy()
            out["scores"][e, :n], out["labels"][e, :n], out["index"][e, :n] = (
                scores[closest].numpy(),
                test.labels[closest].numpy(),
                test.index[closest].numpy(),
            )
            out["count"][e] = len(wrong)
            all_scores.append(scores[wrong].numpy())
            all_eps.append(np.full(len(wrong), eps))
        results.write_arrays(
            self.run_dir / MISCLASSIFIED,
            **out,
            clip=np.array(self.attack.clip),
            all_scores=np.concatenate(all_scores).astype(np.float32),
            all_eps=np.concatenate(all_eps),
        )

    def metrics(self, model: LinearHinge, curves: dict[str, np.ndarray]) -> dict:
        cfg, data = self.cfg, self.data
        running = model.trainer.callback_metrics.get("train/acc")
        headline = crossing(self.grid, curves[f"exact_{'clipped' if self.attack.clip else 'unclipped'}"])
        w_l1 = float(model.w.detach().abs().sum())
        return {
            "pipeline": PIPELINE,
            "profile": cfg.profile.name,
            "seed": cfg.seed,
            "epsilon": model.epsilon,
            "model": {
                "kind": "linear hinge",
                "lr": model.lr,
                "reduction": model.reduction,
                "epochs": cfg.trainer.max_epochs,
                "w_l1": w_l1,
                "eps_w_l1": model.epsilon * w_l1,
                "b": float(model.b.detach()),
            },
            "data": data.describe(),
            "train_accuracy": clean_accuracy(model, data.train.images, data.train.labels, cfg.attack.batch_size),
            # The blog's "train accuracy": running accuracy over the last epoch, before each step's update.
            "train_accuracy_running": None if running is None else float(running),
            "test_accuracy": clean_accuracy(model, data.test.images, data.test.labels, cfg.attack.batch_size),
            "attack": {
                "attack": self.attack.name,
                "clip": self.attack.clip,
                "grid": {"start": float(self.grid[0]), "stop": float(self.grid[-1]), "num": len(self.grid)},
                # first grid epsilon with test accuracy < 50%, and the epsilon where the linearly interpolated curve
                # crosses 50%
                "eps_below_50": headline["first_grid_eps"],
                "eps_at_50": headline["interpolated_eps"],
                "curves": {
                    name: crossing(self.grid, acc) | {"accuracy_at_max_eps": float(acc[-1])}
                    for name, acc in curves.items()
                },
                "misclassified_eps": self.misclassified_grid.tolist(),
            },
            "config": OmegaConf.to_container(cfg, resolve=True),
        }

    @staticmethod
    def claims(metrics: dict) -> dict:
        """What the CLI prints after a run (robustlab.cli.summary_lines): the blog's claims for this run's epsilon
        beside this run's numbers."""
        d, m = metrics["data"], metrics["model"]
        header = (
            f"{PIPELINE} | profile={metrics['profile']} seed={metrics['seed']} | data: {d['name']} digits "
            f"{d['digits']} ({d['train_images']} train / {d['test_images']} test images) | eps={metrics['epsilon']} "
            f"lr={m['lr']} reduction={m['reduction']} epochs={m['epochs']}"
        )
        return {"metrics": metrics, "header": header, "source": "blog"}

    @staticmethod
    def summary_lines(metrics: dict) -> list[str]:
        return []
