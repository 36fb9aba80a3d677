"""The devices and processes a run uses: GPUs that must exist before any work, one GPU per job of a
parallel multirun, and RPR split over the processes of a Lightning DDP trainer (trainer=ddp / ddp_cpu).

RPR across processes runs inside ``trainer.predict``, so Lightning starts the processes and their
process group exactly as for training (also when no training happens, e.g. with ``checkpoint=``).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.data import DataLoader

from robustlab.config import build
from robustlab.errors import require

GPU_ACCELERATORS = ("gpu", "cuda")


def compute_device(trainer_cfg: DictConfig) -> torch.device:
    """Where a run's models are evaluated (RPR, attacks, Fréchet distance): the trainer's accelerator;
    ``auto`` as Lightning resolves it, the GPU when there is one, else the CPU."""
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if accelerator in GPU_ACCELERATORS or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    if accelerator in ("mps", "auto") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def runtime_info(model: torch.nn.Module | None = None) -> dict[str, str]:
    """Where a run computed: the model's device and the library versions, as strings only (the results
    table takes every number of metrics.json as a metric; these are not)."""
    first = None if model is None else next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine() or "cpu"
    return {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda or "none"),
        "cuda_available": str(torch.cuda.is_available()).lower(),
        "lightning": pl.__version__,
        "python": platform.python_version(),
    }


def gpus_asked(devices) -> int:
    """GPUs a Lightning ``devices`` value needs present: a count, a list of ids, or all ("auto", -1)."""
    if isinstance(devices, (list, tuple, ListConfig)):
        return max(int(d) for d in devices) + 1 if len(devices) else 0
    if isinstance(devices, str) and "," in devices:  # Lightning reads "0,2" as GPU ids
        return gpus_asked([d for d in devices.split(",") if d.strip()])
    if str(devices) in ("auto", "-1"):
        return 1
    return int(devices)


def require_devices(trainer_cfg: DictConfig, present: int | None = None) -> None:
    """Stop in one line when the trainer asks for more GPUs than this machine shows (before any work)."""
    if str(trainer_cfg.get("accelerator", "auto")) not in GPU_ACCELERATORS:
        return  # CPU "devices" are processes: more than the cores only oversubscribes
    present = torch.cuda.device_count() if present is None else present
    devices = trainer_cfg.get("devices", "auto")
    asked = gpus_asked(devices)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    require(
        asked <= present,
        f"trainer.devices={devices} needs {asked} GPU(s), this machine shows {present}"
        + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else "")
        + "; use trainer=cpu or trainer=ddp_cpu, or fewer trainer.devices",
    )


def visible_gpus() -> list[str]:
    """GPU ids this process may use; CUDA_VISIBLE_DEVICES first, so a pinned process stays pinned."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]  # NVML count: does not initialise CUDA


def gpu_for_job(job_num: int, visible: list[str]) -> str:
    require(len(visible) > 0, "gpu_per_job=true but no GPU is visible; set gpu_per_job=false or run on a GPU machine")
    return visible[job_num % len(visible)]


def pin_gpu_per_job(job_num: int) -> str:
    """Give this job one GPU (job number modulo the visible GPUs) before CUDA starts.

    A joblib worker runs several jobs in turn: after its first job only its own GPU is visible, so it
    keeps that GPU, and with hydra.launcher.n_jobs = the GPU count the workers hold distinct GPUs.
    """
    gpu = gpu_for_job(job_num, visible_gpus())
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu


def is_rank_zero() -> bool:
    """True in the process that writes results (the only one outside DDP)."""
    return rank_zero_only.rank == 0


def in_hydra_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def rpr_trainer(trainer_cfg: DictConfig, run_dir: Path) -> pl.Trainer | None:
    """A trainer whose processes share the RPR work, for presets with a strategy over several
    processes; None when this one process measures everything."""
    if trainer_cfg.get("strategy") in (None, "auto"):
        return None
    trainer: pl.Trainer = build(
        trainer_cfg,
        default_root_dir=str(run_dir),
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    if trainer.world_size == 1:
        return None
    strategy = trainer.strategy
    relaunches = (
        isinstance(strategy.launcher, _SubprocessScriptLauncher)
        and not strategy.cluster_environment.creates_processes_externally
    )
    # Lightning's ddp starts the extra processes by re-running this command line; in a Hydra multirun
    # that line is the whole sweep, so each extra process would start the sweep again.
    require(
        not (relaunches and in_hydra_multirun()),
        "trainer=ddp / ddp_cpu cannot run inside a local Hydra multirun (-m): run each configuration as a single "
        "run, or sweep with trainer=cpu / gpu (and rpr.shard to split the points over jobs)",
    )
    return trainer


class _Shares(pl.LightningModule):
    """``trainer.predict`` calls predict_step once per process: each measures its share, all gather."""

    def __init__(self, model: torch.nn.Module, measure_share: Callable):
        super().__init__()
        self.model, self.measure_share = model, measure_share

    def predict_step(self, batch, batch_idx):
        share = self.measure_share(self.model, self.global_rank, self.trainer.world_size)
        shares = [None] * self.trainer.world_size
        torch.distributed.all_gather_object(shares, share)
        return shares


def measure_in_processes(trainer: pl.Trainer, model: torch.nn.Module, measure_share: Callable) -> list:
    """``measure_share(model on this process's device, rank, world_size)`` in every process of the
    trainer; returns every process's result, in rank order, to every process."""
    # One item per process: the predict sampler (no padding) hands each process exactly one.
    loader = DataLoader(list(range(trainer.world_size)), batch_size=1)
    (shares,) = trainer.predict(_Shares(model, measure_share), dataloaders=loader)
    return shares
