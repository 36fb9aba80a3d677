"""The paper's pipeline: train M; RPR of M on train and test; keep robust training points; sample a
class-balanced subset; train M_R on it; RPR of M_R on test. Everything lands in the run directory."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from robustlab import results
from robustlab.config import build
from robustlab.data import Split, VisionDataModule
from robustlab.errors import require
from robustlab.models import load_classifier
from robustlab.pipelines.devices import is_rank_zero, measure_in_processes, require_devices, rpr_trainer
from robustlab.pipelines.training import accuracy, fit_classifier, timed
from robustlab.reporting import claims_table
from robustlab.robustness.fastpath import check_options
from robustlab.robustness.perturbations import Perturbation
from robustlab.robustness.rpr import RPRResult, measure_rpr, perturb_at
from robustlab.robustness.shards import merge_results, model_digest, parse_shard, shard_positions
from robustlab.robustness.subsets import balanced_subset

log = logging.getLogger(__name__)


def sample_points(split: Split, count: int | None, seed: int) -> Split:
    """A seeded random subset of ``count`` points (all when None), kept in dataset order."""
    if count is None or count >= len(split):
        return split
    require(count >= 1, f"rpr point counts must be >= 1 or null (all), got {count}")
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:count]
    return split.take(order.sort().values)


def summarise(result: RPRResult, num_classes: int) -> dict:
    robust = result.robust
    return {
        "points": int(len(robust)),
        "clean_accuracy": float(result.correct.mean()),
        "robust_ratio": result.robust_ratio(over="all"),
        "robust_ratio_of_correct": result.robust_ratio(over="correct"),
        "robust_per_class": np.bincount(result.label[robust], minlength=num_classes).tolist(),
        "median_steps_to_failure": float(np.median(result.steps[~robust & result.correct])) if (~robust & result.correct).any() else None,
    }


def model_cache_path(cfg: DictConfig) -> Path | None:
    """Where M trained under this exact data/model/trainer config and seed is cached (None: no cache).

    Training is deterministic on CPU, so a cached M is the M this run would train.
    """
    if not cfg.get("model_cache"):
        return None
    key = {name: OmegaConf.to_container(cfg[name], resolve=True) for name in ("data", "model", "trainer")}
    key["data"]["root"] = str(Path(key["data"]["root"]).resolve())
    key["seed"] = cfg.seed
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cfg.model_cache) / f"M-{digest}.ckpt"


class RPRRetrain:
    """One run of the experiment; ``cfg`` is the resolved Hydra config."""

    processes = None  # the trainer whose processes share the RPR work (trainer=ddp / ddp_cpu), set by run()

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, run_dir
        self.timings: dict[str, float] = {}
        self.m_source = "trained in this run"
        self.perturbation: Perturbation = build(cfg.perturbation)
        require(isinstance(cfg.rpr.max_steps, int) and cfg.rpr.max_steps >= 1, f"rpr.max_steps must be a positive integer, got {cfg.rpr.max_steps}")
        check_options(cfg.rpr.batch_size, cfg.rpr.compile, cfg.rpr.autocast)  # before M is trained, not after
        self.data: VisionDataModule = build(cfg.data)

    def measure(self, model, split: Split, name: str, save: bool = True) -> RPRResult:
        """RPR of ``split`` in this process, saved as rpr_<name>.csv unless ``save`` is false (a DDP
        process's share is not a result of the run)."""
        r = self.cfg.rpr
        with timed(self.timings, f"rpr_{name}"):
            result = measure_rpr(
                model, split.images, split.labels, self.perturbation, r.max_steps, seed=self.cfg.seed, indices=split.index,
                batch_size=r.batch_size, min_block=r.min_block, max_block=r.max_block, channels_last=r.channels_last,
                compile=r.compile, autocast=r.autocast, progress=r.progress, desc=f"RPR {name}",
            )
        if save:
            results.save_rpr(self.run_dir / f"rpr_{name}.csv", result)
        log.info("RPR %s: robust ratio %.4f over all %d points (%.4f of correctly classified)", name,
                 result.robust_ratio(), len(result.index), result.robust_ratio(over="correct"))
        return result

    def new_model(self):
        return build(self.cfg.model, input_shape=self.data.input_shape, num_classes=self.data.num_classes)

    def train(self, data: VisionDataModule, name: str):
        model = self.new_model()
        with timed(self.timings, f"train_{name}"):
            fit_classifier(model, data, self.cfg.trainer, self.run_dir, name, logger_cfg=self.cfg.get("logger"))
        return model

    def model_m(self):
        """M: loaded from ``checkpoint``, or from the model cache when an identical config trained it
        before (sweeps over schemes and MAX_STEPS then train M once per seed), or trained here."""
        cached = model_cache_path(self.cfg)
        source = self.cfg.checkpoint or (cached if cached and cached.is_file() else None)
        if source is None:
            model = self.train(self.data, "M")
            if cached and is_rank_zero():
                results.atomic_write_bytes(cached, (self.run_dir / "M.ckpt").read_bytes())
            return model
        log.info("M loaded from %s (no training)", source)
        self.m_source = str(source)
        if source == cached and is_rank_zero():  # keep the run directory self-contained
            results.atomic_write_bytes(self.run_dir / "M.ckpt", cached.read_bytes())
        model = load_classifier(get_class(self.cfg.model._target_), source)
        require(tuple(model.input_shape) == self.data.input_shape, f"checkpoint {source} expects inputs {model.input_shape}, data {self.cfg.data.name} has {self.data.input_shape}")
        return model

    def run(self) -> dict:
        cfg, started = self.cfg, time.perf_counter()
        shard = parse_shard(cfg.rpr.get("shard"))
        require(shard is None or not cfg.rpr.retrain, f"rpr.shard={cfg.rpr.shard} measures RPR of M on a share of the test points only; "
                "set rpr.retrain=false (retraining needs RPR of every training point)")
        require_devices(cfg.trainer)
        self.processes = rpr_trainer(cfg.trainer, self.run_dir)  # None: this process measures every point
        self.data.setup()  # reads the data (or fails in one line) before any training
        self.perturbation.check_images(self.data.input_shape)
        model = self.model_m()
        test_points = sample_points(self.data.test, cfg.rpr.test_points, cfg.seed)
        if shard:
            test_points = test_points.take(shard_positions(len(test_points), *shard))
            require(len(test_points) > 0, f"rpr.shard={cfg.rpr.shard} holds no point: fewer test points than shards")
        rpr_test = self.measure_points(model, test_points, "M_test")
        if is_rank_zero():  # under DDP the other processes hold the same results and write nothing
            self.save_examples(rpr_test, test_points)
            self.save_perturbed(test_points, cfg.rpr.get("perturbed_examples") or 0)
        metrics = self.metrics()
        metrics["M"] = {"test_accuracy": accuracy(model, self.data.test), "test": summarise(rpr_test, self.data.num_classes)}
        if shard:  # what robustlab-rpr-merge checks: which share, and that every share measured this M
            metrics.update(shard=f"{shard[0]}/{shard[1]}", M_digest=model_digest(model))
        if cfg.rpr.retrain:
            metrics.update(self.retrain(model, test_points))
        metrics["timings_s"] = self.timings
        metrics["wall_time_s"] = round(time.perf_counter() - started, 1)
        if is_rank_zero():
            results.write_json(self.run_dir / results.METRICS, metrics)
        return metrics

    def measure_points(self, model, split: Split, name: str) -> RPRResult:
        """RPR of ``split``; under trainer=ddp / ddp_cpu each process measures positions rank, rank+world, ...
        and every process gets the merged result, which rank 0 alone saves."""
        logged = self.reused(model, split, name)
        if logged is not None:
            return logged
        if self.processes is None:
            return self.measure(model, split, name)

        def share(model_here, rank: int, world: int) -> RPRResult | None:
            part = split.take(shard_positions(len(split), rank, world))
            return self.measure(model_here, part, name, save=False) if len(part) else None

        with timed(self.timings, f"rpr_{name}"):
            result = merge_results([r for r in measure_in_processes(self.processes, model, share) if r is not None])
        if is_rank_zero():
            results.save_rpr(self.run_dir / f"rpr_{name}.csv", result)
        return result

    def reused(self, model, split: Split, name: str) -> RPRResult | None:
        """M's RPR as logged by an earlier run (``rpr.reuse_from``), when it measured exactly this: the
        same M (hash of its weights), seed, scheme, MAX_STEPS and points (indices and labels). Anything else is one
        line, never a silent mix of two runs' numbers."""
        source = self.cfg.rpr.get("reuse_from")
        if not source or name not in ("M_test", "M_train"):
            return None
        folder = Path(source)
        logged, other = results.load_rpr(folder / f"rpr_{name}.csv"), results.read_json(folder / results.METRICS)
        with torch.random.fork_rng():  # building a model draws global random numbers; M_R's must not shift
            earlier_m = load_classifier(get_class(self.cfg.model._target_), folder / "M.ckpt")
        same = {
            "M": model_digest(earlier_m) == model_digest(model), "seed": other.get("seed") == self.cfg.seed,
            "scheme": other.get("perturbation") == self.perturbation.describe(), "MAX_STEPS": logged.max_steps == self.cfg.rpr.max_steps,
            "points": np.array_equal(logged.index, split.index.numpy()) and np.array_equal(logged.label, split.labels.numpy()),
        }
        differ = [what for what, ok in same.items() if not ok]
        require(not differ, f"rpr.reuse_from={folder}: its rpr_{name}.csv was measured with another {', '.join(differ)}; "
                "drop rpr.reuse_from to measure here")
        if is_rank_zero():
            results.save_rpr(self.run_dir / f"rpr_{name}.csv", logged)
        log.info("RPR %s taken from %s (same M, seed, scheme, MAX_STEPS and points)", name, folder)
        self.timings[f"rpr_{name}"] = 0.0
        return logged

    def retrain(self, model, test_points: Split) -> dict:
        """RPR on the training set, the balanced robust subset, M_R and its RPR on the test points."""
        cfg = self.cfg
        rpr_train = self.measure_points(model, sample_points(self.data.train, cfg.rpr.train_points, cfg.seed), "M_train")
        robust = rpr_train.robust
        chosen, subset = balanced_subset(
            rpr_train.index[robust], rpr_train.label[robust], self.data.num_classes,
            cfg.rpr.balance.per_class, cfg.rpr.balance.on_shortfall, seed=cfg.seed,
        )
        log.info("robust subset: %s", subset)
        model_r = self.train(self.data.with_train_index(torch.as_tensor(chosen)), "M_R")
        rpr_test_r = self.measure_points(model_r, test_points, "M_R_test")
        return {
            "M_train": summarise(rpr_train, self.data.num_classes),
            "subset": subset,
            "M_R": {"test_accuracy": accuracy(model_r, self.data.test), "test": summarise(rpr_test_r, self.data.num_classes)},
        }

    def metrics(self) -> dict:
        cfg = self.cfg
        return {
            "experiment": "rpr_retrain",
            "profile": cfg.profile.name,
            "seed": cfg.seed,
            "data": {"name": cfg.data.name, "root": str(Path(cfg.data.root).resolve()), "train_images": len(self.data.train), "test_images": len(self.data.test)},
            "perturbation": self.perturbation.describe(),
            "scheme": self.perturbation.name,
            "max_steps": cfg.rpr.max_steps,
            "checkpoint": cfg.checkpoint,
            "M_source": self.m_source,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }

    @staticmethod
    def summary_lines(metrics: dict) -> list[str]:
        """What the CLI prints after a run: the paper's claims beside this run's numbers."""
        d = metrics["data"]
        header = (f"{metrics['experiment']} | profile={metrics['profile']} seed={metrics['seed']} | data: {d['name']} "
                  f"({d['train_images']} train / {d['test_images']} test images) | {metrics['perturbation']}, MAX_STEPS={metrics['max_steps']}")
        lines = claims_table(metrics, header)
        subset = metrics.get("subset")
        if subset:
            lines.append(f"   M_R trained on {subset['subset_size']} robust images ({subset['per_class_taken']} per class; "
                         f"asked {subset['per_class_asked']}: {subset['shortfall']})")
        return lines

    def save_examples(self, rpr: RPRResult, split: Split, count: int = 8) -> None:
        """Images for Figures 1 and 2: robust vs not-robust correct test points, and first failures."""
        rng = np.random.default_rng(self.cfg.seed)
        robust = np.flatnonzero(rpr.robust)
        fragile = np.flatnonzero(rpr.correct & ~rpr.robust)
        robust = rng.choice(robust, size=min(count, len(robust)), replace=False)
        fragile = rng.choice(fragile, size=min(count, len(fragile)), replace=False)
        images = split.images[torch.as_tensor(fragile, dtype=torch.int64)]
        steps = torch.as_tensor(rpr.first_failure[fragile])
        perturbed = perturb_at(self.perturbation, self.cfg.seed, images, torch.as_tensor(rpr.index[fragile]), steps)
        results.write_arrays(
            self.run_dir / "examples_M_test.npz",
            robust_images=split.images[torch.as_tensor(robust, dtype=torch.int64)].numpy(),
            robust_labels=rpr.label[robust],
            fragile_images=images.numpy(),
            fragile_labels=rpr.label[fragile],
            fragile_clean_pred=rpr.clean_pred[fragile],
            fragile_perturbed=perturbed.numpy(),
            fragile_fail_pred=rpr.fail_pred[fragile],
            fragile_step=rpr.first_failure[fragile],
        )

    def save_perturbed(self, split: Split, count: int, retries: int = 3) -> None:
        """The first ``count`` test points and R(x) at retries 1..``retries``: what a scheme does to an image,
        drawn per severity by ``robustlab-plot corruptions`` (from the same random numbers RPR used)."""
        if count <= 0:
            return
        take = split.take(torch.arange(min(count, len(split))))
        steps = torch.arange(1, retries + 1)
        index = take.index.repeat_interleave(retries)
        images = take.images.repeat_interleave(retries, dim=0)
        perturbed = perturb_at(self.perturbation, self.cfg.seed, images, index, steps.repeat(len(take)))
        perturbed = perturbed.view(len(take), retries, *take.images.shape[1:])
        results.write_arrays(self.run_dir / "examples_perturbed.npz", images=take.images.numpy(),
                             labels=take.labels.numpy(), index=take.index.numpy(), perturbed=perturbed.numpy())
