"""Experiment trackers (the ``logger=`` config group): where a run's training logs and numbers go
besides the run folder's own files.

The run folder stays the record the report reads: CSV training logs (``<run>/<stage>/metrics.csv``),
``metrics.json`` and the per-point / per-epsilon CSV tables are written whatever the logger. The
trackers chosen in ``cfg.logger`` (a mapping ``backend -> options``: ``csv``, ``tensorboard``,
``mlflow``, ``wandb``) receive copies:

* during training, one Lightning logger per tracker beside the CSVLogger (``training_loggers``);
* after the pipeline, every number it computed, in one place for all pipelines (``publish``): the
  numeric leaves of ``metrics.json`` under their dotted paths (``M.test.robust_ratio``), and the
  curves in the run folder's tables with their step: the robust ratio at every MAX_STEPS from each
  ``rpr_*.csv`` and the accuracy at every grid epsilon from ``attack_curve.csv``.

One MLflow run and one W&B run per run folder: the training stages (M, M_R, G, ...) log into it
with their stage as prefix, so a run's numbers sit together in the tracker's UI.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from robustlab.errors import RobustlabError, require
from robustlab.runs import layout

log = logging.getLogger(__name__)

BACKENDS = ("csv", "tensorboard", "mlflow", "wandb")
EXTRAS = {"mlflow": "mlflow", "wandb": "wandb"}  # backend -> its pip extra (the package has the same name)
ATTACK_CURVE = layout.ATTACK_CURVE
TENSORBOARD_DIR = "tensorboard"  # publish()'s scalars; training events stay in <run>/<stage>/ as before

_open: dict[tuple[str, str], object] = {}  # (backend, run folder) -> the tracker's run, shared by all stages


def chosen(logger_cfg: DictConfig | dict | None) -> dict[str, dict]:
    """The configured trackers as ``{backend: options}`` (csv alone when none is configured)."""
    if logger_cfg is None:
        return {"csv": {}}
    plain = OmegaConf.to_container(logger_cfg, resolve=True) if isinstance(logger_cfg, DictConfig) else dict(logger_cfg)
    unknown = sorted(set(plain) - set(BACKENDS))
    require(
        not unknown,
        f"unknown logger {unknown}; choose logger= one or a list of {', '.join(BACKENDS)} (e.g. logger=[csv,mlflow])",
    )
    return {name: dict(options or {}) for name, options in plain.items()}


def check_installed(logger_cfg) -> None:
    """One line naming the extra for a tracker whose package is missing; called before any work."""
    for backend in chosen(logger_cfg):
        package = EXTRAS.get(backend)
        if package and importlib.util.find_spec(package) is None:
            raise RobustlabError(
                f"logger={backend} needs the {package} package: pip install 'robustlab[{backend}]' (or make extras)"
            )


# ---------------------------------------------------------------------------------------------
# Training: Lightning loggers
# ---------------------------------------------------------------------------------------------


def training_loggers(logger_cfg, run_dir: Path, name: str, tensorboard: bool = False) -> list:
    """Lightning loggers for training stage ``name``: the CSVLogger always (the report reads it), then
    the chosen trackers. ``tensorboard``: the stage logs images (the GAN's sample grids), so it
    gets TensorBoard events whatever the logger."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    from robustlab.pipelines.devices import is_rank_zero

    trackers = chosen(logger_cfg)
    loggers = [CSVLogger(str(run_dir), name=name, version="")]
    if tensorboard or "tensorboard" in trackers:
        loggers.append(TensorBoardLogger(str(run_dir), name=name, version="", default_hp_metric=False))
    if not is_rank_zero():  # Lightning logs from rank 0 alone; other DDP processes must not open tracker runs
        return loggers
    if "mlflow" in trackers:
        from pytorch_lightning.loggers import MLFlowLogger

        options = trackers["mlflow"]
        loggers.append(
            MLFlowLogger(tracking_uri=options["tracking_uri"], run_id=mlflow_run(options, run_dir), prefix=name)
        )
    if "wandb" in trackers:
        from pytorch_lightning.loggers import WandbLogger

        loggers.append(WandbLogger(experiment=wandb_run(trackers["wandb"], run_dir), prefix=name))
    return loggers


def mlflow_run(options: dict, run_dir: Path) -> str:
    """The id of the MLflow run of this run folder (created on first use, in the SQLite store)."""
    key = ("mlflow", str(run_dir))
    if key not in _open:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=options["tracking_uri"])
        Path(options["artifact_location"]).mkdir(parents=True, exist_ok=True)
        experiment = client.get_experiment_by_name(options["experiment"])
        experiment_id = (
            experiment.experiment_id
            if experiment
            else client.create_experiment(
                options["experiment"], artifact_location=Path(options["artifact_location"]).resolve().as_uri()
            )
        )
        run = client.create_run(experiment_id, run_name=run_dir.name, tags={"run_dir": str(run_dir.resolve())})
        _open[key] = run.info.run_id
        log.info("MLflow run %s in %s", run.info.run_id, options["tracking_uri"])
    return _open[key]


def wandb_run(options: dict, run_dir: Path):
    """The W&B run of this run folder, offline: its files go to ``<run>/wandb/offline-run-*``."""
    key = ("wandb", str(run_dir))
    if key not in _open:
        import wandb

        _open[key] = wandb.init(
            mode=options.get("mode", "offline"),
            project=options["project"],
            dir=str(run_dir),
            name=run_dir.name,
            tags=[str(t) for t in options.get("tags") or []],
            reinit="create_new",
        )
    return _open[key]


# ---------------------------------------------------------------------------------------------
# After the pipeline: every number it computed
# ---------------------------------------------------------------------------------------------


def run_numbers(run_dir: Path, metrics: dict) -> Iterator[tuple[str, float, int]]:
    """(name, value, step) for every number of the run: metrics.json's numeric leaves at step 0, the
    RPR curves (step = MAX_STEPS) and the attack curves (step = position on the epsilon grid)."""
    from robustlab import results
    from robustlab.runs.store import META_KEYS, numeric_leaves

    for name, value in numeric_leaves({k: v for k, v in metrics.items() if k not in META_KEYS}):
        if math.isfinite(value):  # NaN stands for "never reached" in the store; a tracker plots it as a gap anyway
            yield name, value, 0
    for path in sorted(run_dir.glob("rpr_*.csv")):
        result = results.load_rpr(path)
        for over, suffix in (("all", ""), ("correct", "_of_correct")):
            steps, ratio = result.curve(over)
            for step, value in zip(steps, ratio, strict=True):
                if math.isfinite(value):
                    yield f"curve.{path.stem}.robust_ratio{suffix}", float(value), int(step)
    if (run_dir / ATTACK_CURVE).is_file():
        table = pd.read_csv(run_dir / ATTACK_CURVE)
        for column in table.columns:
            for step, value in enumerate(table[column].to_numpy(dtype=np.float64)):
                yield f"curve.attack.{column}", float(value), step


def publish(logger_cfg, run_dir: Path, metrics: dict) -> dict[str, int]:
    """Send the run's numbers to every chosen tracker and close its run; how many values each got.

    ``csv`` gets nothing here: metrics.json and the run's tables are its record."""
    trackers = {backend: options for backend, options in chosen(logger_cfg).items() if backend != "csv"}
    if not trackers:
        return {}
    numbers = list(run_numbers(Path(run_dir), metrics))
    sent = {}
    for backend, options in trackers.items():
        {"tensorboard": _to_tensorboard, "mlflow": _to_mlflow, "wandb": _to_wandb}[backend](
            options, Path(run_dir), metrics, numbers
        )
        sent[backend] = len(numbers)
        log.info("logger %s: %d values", backend, len(numbers))
    return sent


def _to_tensorboard(options: dict, run_dir: Path, metrics: dict, numbers: list) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR))
    for name, value, step in numbers:
        writer.add_scalar(name, value, step)
    writer.close()


def _to_mlflow(options: dict, run_dir: Path, metrics: dict, numbers: list) -> None:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from robustlab.runs.store import flat_config

    client, run_id = MlflowClient(tracking_uri=options["tracking_uri"]), mlflow_run(options, run_dir)
    stamp = int(pd.Timestamp.now().timestamp() * 1000)
    rows = [Metric(name, value, stamp, step) for name, value, step in numbers]
    config = metrics.get("config") if isinstance(metrics.get("config"), dict) else {}
    params = [
        Param(key, str(value)[:6000]) for key, value in flat_config(config).items()
    ]  # the run's config, searchable
    for start in range(0, max(len(rows), len(params)), 100):  # MLflow takes at most 1000 metrics / 100 params per batch
        client.log_batch(run_id, metrics=rows[start : start + 100], params=params[start : start + 100])
    client.set_terminated(run_id, "FINISHED")
    _open.pop(("mlflow", str(run_dir)), None)


def _to_wandb(options: dict, run_dir: Path, metrics: dict, numbers: list) -> None:
    run = wandb_run(options, run_dir)
    summary = {name: value for name, value, step in numbers if not name.startswith("curve.")}
    run.summary.update(summary)
    curves: dict[str, list[tuple[int, float]]] = {}
    for name, value, step in numbers:
        if name.startswith("curve."):
            curves.setdefault(name, []).append((step, value))
    for name, points in curves.items():  # each curve on its own x axis (W&B's step is global to the run)
        run.define_metric(name, step_metric=f"{name}.step")
        for step, value in points:
            run.log({name: value, f"{name}.step": step})
    run.finish()
    _open.pop(("wandb", str(run_dir)), None)
