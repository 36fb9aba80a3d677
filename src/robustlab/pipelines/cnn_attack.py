"""FGSM and PGD accuracy-under-attack curves of saved classifiers (e.g. the RPR experiment's M and M_R)
on the test set: the same attack code as the linear experiment, on multi-class models. No training.

Writes ``attack_curve.csv`` (eps, then one column ``<model>_<attack>`` per checkpoint and attack) and
``metrics.json`` (clean accuracy and where each curve falls below 50%, per checkpoint).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from robustlab import results
from robustlab.config import build, grid_spec
from robustlab.data import VisionDataModule, sample_points
from robustlab.errors import require
from robustlab.models import load_classifier
from robustlab.pipelines.devices import compute_device, runtime_info
from robustlab.pipelines.measure_cache import attack_key, cached_curve, result_cache
from robustlab.pipelines.training import timed
from robustlab.robustness.attacks import Attack, accuracy_under_attack, clean_accuracy, crossing, linspace_grid
from robustlab.robustness.fastpath import check_options, fast_forward
from robustlab.runs import layout

PIPELINE = "cnn_attack"


class CNNAttack:
    """One run; ``cfg`` is the resolved Hydra config (experiment=cnn_attack)."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir, self.timings = cfg, Path(run_dir), {}
        a = cfg.attack
        self.grid = linspace_grid(grid_spec(a.epsilons))
        require(isinstance(a.clip, bool), f"attack.clip must be true or false, got {a.clip}")
        require(
            isinstance(a.batch_size, int) and a.batch_size >= 1,
            f"attack.batch_size must be an integer >= 1, got {a.batch_size}",
        )
        require(isinstance(a.channels_last, bool), f"attack.channels_last must be true or false, got {a.channels_last}")
        check_options(compile=a.compile, autocast=a.autocast, prefix="attack")
        self.attacks = {}
        if a.fgsm:
            self.attacks["fgsm"] = Attack("fgsm", clip=a.clip)
        if a.pgd is not None:
            self.attacks["pgd"] = Attack(
                "pgd", clip=a.clip, steps=a.pgd.steps, step_size=a.pgd.step_size, random_start=a.pgd.random_start
            )
        require(len(self.attacks) > 0, "no attack selected; set attack.fgsm=true or give attack.pgd")
        checkpoints = cfg.checkpoints
        require(
            OmegaConf.is_dict(checkpoints) and len(checkpoints) > 0,
            "checkpoints must map model names to .ckpt files, e.g. checkpoints.M=path/to/M.ckpt",
        )
        self.checkpoints = {str(name): str(path) for name, path in checkpoints.items()}
        # Loading first: a missing or corrupt checkpoint fails in one line before any data is read.
        cls = get_class(cfg.model._target_)
        device = compute_device(cfg.trainer)  # the attacks run on the model's device: the GPU when the trainer has one
        self.models = {name: load_classifier(cls, path).to(device) for name, path in self.checkpoints.items()}
        self.data: VisionDataModule = build(cfg.data)
        for name, model in self.models.items():
            require(
                tuple(model.input_shape) == self.data.input_shape,
                f"checkpoint {self.checkpoints[name]} expects inputs {tuple(model.input_shape)}, data {cfg.data.name} "
                f"has {self.data.input_shape}",
            )
        # The fast path wraps copies; the attacks' gradients flow through it (autocast only for the forward pass).
        self.plain = dict(self.models)  # the weights the cache key hashes (a FastForward copy holds the same)
        self.models = {
            name: fast_forward(model, a.channels_last, a.compile, a.autocast) for name, model in self.models.items()
        }
        self.cache, self.sources = result_cache(cfg, "attack"), {}

    def run(self) -> dict:
        cfg, started = self.cfg, time.perf_counter()
        self.data.setup()
        points = sample_points(self.data.test, cfg.attack.test_points, cfg.seed)
        columns, per_model = {"eps": self.grid}, {}
        for name, model in self.models.items():
            per_model[name] = {
                "checkpoint": self.checkpoints[name],
                "test_accuracy": clean_accuracy(model, points.images, points.labels, cfg.attack.batch_size),
            }
            for attack_name, attack in self.attacks.items():
                with timed(self.timings, f"{name}_{attack_name}"):
                    accuracy = self.curve(name, attack, points)
                columns[f"{name}_{attack_name}"] = accuracy
                per_model[name][attack_name] = crossing(self.grid, accuracy) | {
                    "accuracy_at_max_eps": float(accuracy[-1])
                }
        results.write_table(self.run_dir / layout.ATTACK_CURVE, columns)
        metrics = {
            "pipeline": PIPELINE,
            "profile": cfg.profile.name,
            "seed": cfg.seed,
            "data": {
                "name": cfg.data.name,
                "root": str(Path(cfg.data.root).resolve()),
                "test_points": len(points),
                "test_images": len(self.data.test),
            },
            "attack": {name: attack.label for name, attack in self.attacks.items()}
            | {"grid": {"start": float(self.grid[0]), "stop": float(self.grid[-1]), "num": len(self.grid)}},
            "models": per_model,
            "timings_s": self.timings,
            "attack_source": self.sources,  # strings: which curve came from the cache
            "runtime": runtime_info(next(iter(self.plain.values()))),
            "wall_time_s": round(time.perf_counter() - started, 1),
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        results.write_metrics(self.run_dir, metrics)
        return metrics

    def curve(self, name: str, attack: Attack, points):
        """Accuracy under ``attack`` over the grid: from the attack cache when this model, attack, grid and
        points were attacked before with the same fast-path options, else computed (and cached)."""
        a = self.cfg.attack
        fast = {"channels_last": a.channels_last, "compile": a.compile, "autocast": a.autocast}
        key = attack_key(self.plain[name], attack.name, dataclasses.asdict(attack), self.grid, fast, a.batch_size)
        model = self.models[name]

        def compute():
            return accuracy_under_attack(model, points.images, points.labels, self.grid, attack, a.batch_size)

        curve, self.sources[f"{name}_{attack.name}"] = cached_curve(self.cache, key, points, compute)
        return curve

    @staticmethod
    def summary_lines(metrics: dict) -> list[str]:
        grid = metrics["attack"]["grid"]
        lines = [
            f"== {PIPELINE} | profile={metrics['profile']} seed={metrics['seed']} | {metrics['data']['name']}, "
            f"{metrics['data']['test_points']} test points | eps {grid['start']:g}..{grid['stop']:g} ({grid['num']} "
            "values)"
        ]
        for name, m in metrics["models"].items():
            attacks = [k for k in m if isinstance(m[k], dict)]
            at50 = ", ".join(
                f"{k} acc < 50% from eps {_eps(m[k]['first_grid_eps'])}, acc at eps {grid['stop']:g}: "
                f"{m[k]['accuracy_at_max_eps']:.4f}"
                for k in attacks
            )
            lines.append(f"   {name}: clean test accuracy {m['test_accuracy']:.4f}; {at50}")
        return lines


def _eps(value) -> str:
    return "never on the grid" if value is None else f"{value:g}"
