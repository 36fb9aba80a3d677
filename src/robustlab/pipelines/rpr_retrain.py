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
from robustlab.data import Split, VisionDataModule, sample_points
from robustlab.errors import require
from robustlab.models import load_classifier
from robustlab.pipelines.devices import (
    compute_device,
    is_rank_zero,
    measure_in_processes,
    require_devices,
    rpr_trainer,
    runtime_info,
)
from robustlab.pipelines.measure_cache import CachedRPR, measure_options, result_cache
from robustlab.pipelines.resume import resume_from_config
from robustlab.pipelines.training import accuracy, fit_classifier, timed
from robustlab.robustness.calibration import calibrate_scheme
from robustlab.robustness.fastpath import check_options
from robustlab.robustness.perturbations import Perturbation
from robustlab.robustness.rpr import RPRResult, measure_rpr, perturb_at
from robustlab.robustness.shards import merge_results, model_digest, parse_shard, shard_positions
from robustlab.robustness.subsets import balanced_subset, class_counts, matched_random_subset, too_small
from robustlab.robustness.summary import summarise
from robustlab.runs import layout
from robustlab.runs.identity import code_version
from robustlab.runs.schema import read_metrics

log = logging.getLogger(__name__)


def model_cache_path(cfg: DictConfig) -> Path | None:
    """Where M trained under this exact data/model/trainer config and seed is cached (None: no cache).

    Training is deterministic on CPU for a given thread count, so a cached M is the M this run would
    train. The code version (robustlab.runs.identity) is part of the key: after a change to the training
    code an old M is not reused; so is ``threads`` (it changes the summation order of CPU training).
    """
    if not cfg.get("model_cache"):
        return None
    key = {name: OmegaConf.to_container(cfg[name], resolve=True) for name in ("data", "model", "trainer")}
    key["data"]["root"] = str(Path(key["data"]["root"]).resolve())
    key["seed"] = cfg.seed
    key["threads"] = cfg.get("threads")
    key["code"] = code_version()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cfg.model_cache) / f"M-{digest}.ckpt"


def calibrated_scheme(cfg: DictConfig) -> tuple[dict | None, DictConfig]:
    """The perturbation config, its strength read from logged operating-point results when ``rpr.calibrate.source``
    names them (None and the config as given otherwise). The record says where the value came from."""
    wanted = cfg.rpr.get("calibrate") or {}
    if not wanted.get("source"):
        return None, cfg.perturbation
    record, scheme = calibrate_scheme(
        OmegaConf.to_container(cfg.perturbation, resolve=True),
        wanted.source,
        wanted.get("split", "test"),
        wanted.get("target"),
        wanted.get("curve"),
        cfg.rpr.max_steps,
    )
    # A curve that never crosses leaves the scheme as configured; run() then records that as the result.
    return record, OmegaConf.create(scheme)


class RPRRetrain:
    """One run of the pipeline; ``cfg`` is the resolved Hydra config."""

    processes = None  # the trainer whose processes share the RPR work (trainer=ddp / ddp_cpu), set by run()

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, run_dir
        self.timings: dict[str, float] = {}
        self.m_source = "trained in this run"
        self.rpr_sources: dict[str, str] = {}  # per measurement: measured, taken from the RPR cache, or reused
        self.rpr_cache = result_cache(cfg, "rpr")
        self.resume = resume_from_config(cfg)
        self.calibration, self.scheme = calibrated_scheme(cfg)  # the scheme measured: its config keys the RPR cache
        self.perturbation: Perturbation = build(self.scheme)
        require(
            isinstance(cfg.rpr.max_steps, int) and cfg.rpr.max_steps >= 1,
            f"rpr.max_steps must be a positive integer, got {cfg.rpr.max_steps}",
        )
        check_options(cfg.rpr.batch_size, cfg.rpr.compile, cfg.rpr.autocast)  # before M is trained, not after
        self.data: VisionDataModule = build(cfg.data)

    def measure(self, model, split: Split, name: str, save: bool = True) -> RPRResult:
        """RPR of ``split`` in this process, saved as rpr_<name>.csv unless ``save`` is false (a DDP
        process's share is not a result of the run)."""
        r = self.cfg.rpr
        with timed(self.timings, f"rpr_{name}"):
            result = measure_rpr(
                model,
                split.images,
                split.labels,
                self.perturbation,
                r.max_steps,
                seed=self.cfg.seed,
                indices=split.index,
                **measure_options(r),
                progress=r.progress,
                desc=f"RPR {name}",
            )
        if save:
            results.save_rpr(self.run_dir / layout.rpr_file(name), result)
        log.info(
            "RPR %s: robust ratio %.4f over all %d points (%.4f of correctly classified)",
            name,
            result.robust_ratio(),
            len(result.index),
            result.robust_ratio(over="correct"),
        )
        return result

    def new_model(self):
        return build(self.cfg.model, input_shape=self.data.input_shape, num_classes=self.data.num_classes)

    def train(self, data: VisionDataModule, name: str):
        model = self.new_model()
        with timed(self.timings, f"train_{name}"):
            fit_classifier(
                model, data, self.cfg.trainer, self.run_dir, name, resume=self.resume, logger_cfg=self.cfg.get("logger")
            )
        return model

    def model_m(self):
        """M: loaded from ``checkpoint``, or from the model cache when an identical config trained it
        before (sweeps over schemes and MAX_STEPS then train M once per seed), or trained here."""
        cached = model_cache_path(self.cfg)
        source = self.cfg.checkpoint or (cached if cached and cached.is_file() else None)
        if source is None:
            model = self.train(self.data, "M")
            if cached and is_rank_zero():
                results.atomic_write_bytes(cached, (self.run_dir / layout.checkpoint_file("M")).read_bytes())
            return model
        log.info("M loaded from %s (no training)", source)
        self.m_source = str(source)
        if source == cached and is_rank_zero():  # keep the run directory self-contained
            results.atomic_write_bytes(self.run_dir / layout.checkpoint_file("M"), cached.read_bytes())
        model = load_classifier(get_class(self.cfg.model._target_), source).to(compute_device(self.cfg.trainer))
        require(
            tuple(model.input_shape) == self.data.input_shape,
            f"checkpoint {source} expects inputs {model.input_shape}, data {self.cfg.data.name} has "
            f"{self.data.input_shape}",
        )
        return model

    def run(self) -> dict:
        cfg, started = self.cfg, time.perf_counter()
        shard = parse_shard(cfg.rpr.get("shard"))
        require(
            shard is None or not cfg.rpr.retrain,
            f"rpr.shard={cfg.rpr.shard} measures RPR of M on a share of the test points only; "
            "set rpr.retrain=false (retraining needs RPR of every training point)",
        )
        require_devices(cfg.trainer)
        self.processes = rpr_trainer(cfg.trainer, self.run_dir)  # None: this process measures every point
        self.data.setup()  # reads the data (or fails in one line) before any training
        self.perturbation.check_images(self.data.input_shape)
        if self.calibration and self.calibration["strength"] is None:
            return self.not_calibrated(started)
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
        metrics["M"] = {
            "test_accuracy": accuracy(model, self.data.test),
            "test": summarise(rpr_test, self.data.num_classes),
        }
        if shard:  # what robustlab-rpr-merge checks: which share, and that every share measured this M
            metrics.update(shard=f"{shard[0]}/{shard[1]}", M_digest=model_digest(model))
        if cfg.rpr.retrain:
            metrics.update(self.retrain(model, test_points))
        metrics["timings_s"] = self.timings
        metrics["rpr_source"] = self.rpr_sources  # strings: which measurement came from the cache
        metrics["runtime"] = runtime_info(model)
        metrics["wall_time_s"] = round(time.perf_counter() - started, 1)
        if is_rank_zero():
            results.write_metrics(self.run_dir, metrics)
        return metrics

    def measure_points(self, model, split: Split, name: str) -> RPRResult:
        """RPR of ``split``; under trainer=ddp / ddp_cpu each process measures positions rank, rank+world, ...
        and every process gets the merged result, which rank 0 alone saves."""
        logged = self.reused(model, split, name)
        if logged is not None:
            self.rpr_sources[name] = f"reused from {self.cfg.rpr.reuse_from}"
            return logged
        # self.scheme, not cfg.perturbation: a calibrated run measures another strength than its config names
        cached = CachedRPR(self.rpr_cache, model, split, self.scheme, self.cfg.rpr, self.cfg.seed)
        looked_up = time.perf_counter()
        result = cached.load()
        self.rpr_sources[name] = cached.source
        if result is not None:
            self.timings[f"rpr_{name}"] = round(time.perf_counter() - looked_up, 1)  # the lookup, not a measurement
            if is_rank_zero():
                results.save_rpr(self.run_dir / f"rpr_{name}.csv", result)
            return result
        result = self.measure_here_or_shared(model, split, name)
        if is_rank_zero():
            cached.store(result)
        return result

    def measure_here_or_shared(self, model, split: Split, name: str) -> RPRResult:
        if self.processes is None:
            return self.measure(model, split, name)

        def share(model_here, rank: int, world: int) -> RPRResult | None:
            part = split.take(shard_positions(len(split), rank, world))
            return self.measure(model_here, part, name, save=False) if len(part) else None

        with timed(self.timings, f"rpr_{name}"):
            result = merge_results([r for r in measure_in_processes(self.processes, model, share) if r is not None])
        if is_rank_zero():
            results.save_rpr(self.run_dir / layout.rpr_file(name), result)
        return result

    def reused(self, model, split: Split, name: str) -> RPRResult | None:
        """M's RPR as logged by an earlier run (``rpr.reuse_from``), when it measured exactly this: the
        same M (hash of its weights), seed, scheme, MAX_STEPS and points (indices and labels). Anything else is one
        line, never a silent mix of two runs' numbers."""
        source = self.cfg.rpr.get("reuse_from")
        if not source or name not in ("M_test", "M_train"):
            return None
        folder = Path(source)
        logged, other = results.load_rpr(folder / layout.rpr_file(name)), read_metrics(folder)
        with torch.random.fork_rng():  # building a model draws global random numbers; M_R's must not shift
            earlier_m = load_classifier(get_class(self.cfg.model._target_), folder / layout.checkpoint_file("M"))
        same = {
            "M": model_digest(earlier_m) == model_digest(model),
            "seed": other.get("seed") == self.cfg.seed,
            "scheme": other.get("perturbation") == self.perturbation.describe(),
            "MAX_STEPS": logged.max_steps == self.cfg.rpr.max_steps,
            "points": np.array_equal(logged.index, split.index.numpy())
            and np.array_equal(logged.label, split.labels.numpy()),
        }
        differ = [what for what, ok in same.items() if not ok]
        require(
            not differ,
            f"rpr.reuse_from={folder}: its rpr_{name}.csv was measured with another {', '.join(differ)}; "
            "drop rpr.reuse_from to measure here",
        )
        if is_rank_zero():
            results.save_rpr(self.run_dir / layout.rpr_file(name), logged)
        log.info("RPR %s taken from %s (same M, seed, scheme, MAX_STEPS and points)", name, folder)
        self.timings[f"rpr_{name}"] = 0.0
        return logged

    def retrain(self, model, test_points: Split) -> dict:
        """RPR on the training set, the balanced robust subset, M_R and its RPR on the test points; with
        ``rpr.control``, M_rand (the same class counts drawn at random from the whole training set) too."""
        cfg = self.cfg
        balance = cfg.rpr.balance
        rpr_train, stopped = self.measure_train(model, int(balance.per_class))
        robust = rpr_train.robust
        out = {"M_train": summarise(rpr_train, self.data.num_classes) | stopped}
        available = class_counts(rpr_train.label[robust], self.data.num_classes)
        # Before sampling: a harsh scheme can leave a class with (almost) no robust image; M_R would then
        # learn from a near-empty set. The run says so in one line and keeps M's numbers as its result.
        # (never more than asked per class: a run asking 3 per class is not near-empty at 3). With
        # on_shortfall=error a short class stops the run in balanced_subset instead: the user asked for that.
        floor = min(int(balance.get("min_per_class", 1)), int(balance.per_class))
        reason = None if balance.on_shortfall == "error" else too_small(available, floor)
        if reason is not None:
            log.warning("%s; M_R and M_rand not trained", reason)
            return out | {
                "retrain_skipped": reason,
                **self.untrained(),
                "subset": {"available_per_class": available.tolist(), "per_class_taken": None, "subset_size": None},
            }
        chosen, subset = balanced_subset(
            rpr_train.index[robust],
            rpr_train.label[robust],
            self.data.num_classes,
            balance.per_class,
            balance.on_shortfall,
            seed=cfg.seed,
        )
        log.info("robust subset: %s", subset)
        model_r = self.train(self.data.with_train_index(torch.as_tensor(chosen)), "M_R")
        rpr_test_r = self.measure_points(model_r, test_points, "M_R_test")
        out |= {
            "subset": subset,
            "M_R": {
                "test_accuracy": accuracy(model_r, self.data.test),
                "test": summarise(rpr_test_r, self.data.num_classes),
            },
        }
        if cfg.rpr.get("control"):  # after M_R, so M_R's numbers are those of a run without the control
            out |= self.control(chosen, test_points)
        return out

    def measure_train(self, model, per_class: int) -> tuple[RPRResult, dict]:
        """RPR of M on the training points: all at once, or (``rpr.train_until_balanced`` > 0) chunk by chunk in a
        seeded random order until every class has ``per_class`` robust points, which saves most of the work when
        robust images are common. Each point's result is the same either way (the perturbations are keyed by its
        dataset index), and each chunk is cached on its own, so a resumed run takes the chunks it measured."""
        points = sample_points(self.data.train, self.cfg.rpr.train_points, self.cfg.seed)
        chunk = int(self.cfg.rpr.get("train_until_balanced") or 0)
        if chunk <= 0:
            return self.measure_points(model, points, "M_train"), {}
        order = torch.randperm(len(points), generator=torch.Generator().manual_seed(self.cfg.seed))
        parts, sources, started = [], set(), time.perf_counter()
        for start in range(0, len(points), chunk):
            parts.append(self.measure_points(model, points.take(order[start : start + chunk].sort().values), "M_train"))
            sources.add(self.rpr_sources["M_train"])
            found = class_counts(np.concatenate([p.label[p.robust] for p in parts]), self.data.num_classes)
            log.info(
                "RPR M_train until balanced: %d of %d points measured, robust per class %s",
                min(start + chunk, len(points)),
                len(points),
                found.tolist(),
            )
            if (found >= per_class).all():
                break
        result = merge_results(parts)
        if is_rank_zero():  # the merged result replaces the last chunk's file
            results.save_rpr(self.run_dir / layout.rpr_file("M_train"), result)
        self.timings["rpr_M_train"] = round(time.perf_counter() - started, 1)
        self.rpr_sources["M_train"] = ", ".join(sorted(sources))
        return result, {
            "until_balanced": {
                "measured": int(len(result.index)),
                "of": int(len(points)),
                "chunk": chunk,
                "chunks": len(parts),
                "per_class": per_class,
            }
        }

    def untrained(self, names: tuple[str, ...] = ("M_R",)) -> dict:
        """Null numbers for models a run did not train: a claim or table then reads them as undefined in this
        run (one run of several seeds), never as a missing key (a broken run) nor as a number."""
        names = (*names, "M_rand") if self.cfg.rpr.get("control") and "M_rand" not in names else names
        return {name: {"test_accuracy": None, "test": {"robust_ratio": None}} for name in names}

    def not_calibrated(self, started: float) -> dict:
        """A calibrated run whose curve never reaches its target: the finding is the result (M, M_R and M_rand
        null); training or measuring at some other strength would answer another question."""
        reason = self.calibration["not_reached"]
        log.warning("%s; nothing measured at this operating point", reason)
        metrics = self.metrics() | {"calibration_not_reached": reason, **self.untrained(("M", "M_R"))}
        if self.cfg.rpr.retrain:
            metrics["M_train"] = {"robust_ratio": None}
        metrics.update(
            timings_s=self.timings, rpr_source=self.rpr_sources, wall_time_s=round(time.perf_counter() - started, 1)
        )
        if is_rank_zero():
            results.write_metrics(self.run_dir, metrics)
        return metrics

    def control(self, chosen: np.ndarray, test_points: Split) -> dict:
        """M_rand: the architecture and training budget of M_R (same epochs and batch size on a subset of the same
        size, hence the same optimiser steps) on a random subset of the whole training set with M_R's class counts."""
        train = self.data.train
        counts = class_counts(
            train.labels[torch.isin(train.index, torch.as_tensor(chosen))].numpy(), self.data.num_classes
        )
        picked = matched_random_subset(train.index.numpy(), train.labels.numpy(), counts, self.cfg.seed)
        model_rand = self.train(self.data.with_train_index(torch.as_tensor(picked)), "M_rand")
        rpr_test = self.measure_points(model_rand, test_points, "M_rand_test")
        overlap = int(np.isin(picked, chosen).sum())
        return {
            "M_rand": {
                "test_accuracy": accuracy(model_rand, self.data.test),
                "test": summarise(rpr_test, self.data.num_classes),
                "train_images": int(len(picked)),
                "class_counts": counts.tolist(),
                "overlap_with_M_R": overlap,
                "budget": "same epochs, batch size and subset size as M_R (so the same optimiser steps)",
            }
        }

    def metrics(self) -> dict:
        cfg = self.cfg
        return {
            "pipeline": "rpr_retrain",
            "profile": cfg.profile.name,
            "seed": cfg.seed,
            "data": {
                "name": cfg.data.name,
                "root": str(Path(cfg.data.root).resolve()),
                "train_images": len(self.data.train),
                "test_images": len(self.data.test),
            },
            "perturbation": self.perturbation.describe(),
            "scheme": self.perturbation.name,
            "max_steps": cfg.rpr.max_steps,
            "checkpoint": cfg.checkpoint,
            "M_source": self.m_source,
            "calibration": self.calibration,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }

    @staticmethod
    def claims(metrics: dict) -> dict:
        """Which claims the CLI prints after a run (robustlab.cli.summary_lines, with the report's claims engine):
        the paper's, beside this run's numbers, under this header."""
        d = metrics["data"]
        header = (
            f"{metrics['pipeline']} | profile={metrics['profile']} seed={metrics['seed']} | data: {d['name']} "
            f"({d['train_images']} train / {d['test_images']} test images) | {metrics['perturbation']}, "
            f"MAX_STEPS={metrics['max_steps']}"
        )
        return {"metrics": metrics, "header": header, "source": "paper"}

    @staticmethod
    def summary_lines(metrics: dict) -> list[str]:
        """What the CLI prints after the claims: how M_R was trained (or why it was not)."""
        lines = []
        subset = metrics.get("subset")
        if metrics.get("calibration_not_reached"):
            lines.append(f"   not measured: {metrics['calibration_not_reached']}")
        elif metrics.get("retrain_skipped"):
            lines.append(f"   M_R not trained: {metrics['retrain_skipped']}")
        elif subset:
            lines.append(
                f"   M_R trained on {subset['subset_size']} robust images ({subset['per_class_taken']} per class; "
                f"asked {subset['per_class_asked']}: {subset['shortfall']})"
            )
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
            self.run_dir / layout.RPR_EXAMPLES,
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
        results.write_arrays(
            self.run_dir / "examples_perturbed.npz",
            images=take.images.numpy(),
            labels=take.labels.numpy(),
            index=take.index.numpy(),
            perturbed=perturbed.numpy(),
        )
