"""Hydra entry point: ``robustlab experiment=rpr_mnist profile=quick`` (see conf/ and README).

Configuration errors and bad input end the run with one line on stderr and exit status 2, never a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from robustlab.configs import conf_dir
from robustlab.configs.precheck import precheck, unknown_option  # noqa: F401  (unknown_option: tests)
from robustlab.errors import RobustlabError, one_line_errors

CONF_DIR = conf_dir()  # importing precheck registered the config groups' schemas (robustlab.configs.schema)
log = logging.getLogger("robustlab")


def pipeline_class(path: str) -> type:
    """The pipeline named by the config's ``pipeline`` value (a class path): no registry to edit."""
    module, _, name = str(path).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise RobustlabError(f"unknown pipeline '{path}'; set pipeline to a class path or pick an experiment=... preset") from None


def print_summary(pipeline: type, metrics: dict) -> None:
    """Each pipeline says what to print at the end (its claims beside the run's numbers)."""
    for line in pipeline.summary_lines(metrics):
        print(line)


def set_threads(threads: int | None) -> None:
    """CPU threads for torch. On a CPU shared with other busy processes, 1 avoids OpenMP threads
    spinning against each other (measured there: 10x slower RPR with 2 threads than expected)."""
    import torch

    if threads is None:
        return
    if not (isinstance(threads, int) and threads >= 1):
        raise RobustlabError(f"threads must be a positive integer or null (torch's default), got {threads}")
    torch.set_num_threads(threads)


def pin_gpu(job_num: int) -> None:
    """gpu_per_job=true: this job sees one GPU (job number mod the visible ones), set before CUDA starts."""
    from robustlab.pipelines.devices import pin_gpu_per_job

    log.info("job %d uses GPU %s (gpu_per_job=true)", job_num, pin_gpu_per_job(job_num))


def is_rank_zero() -> bool:
    from robustlab.pipelines.devices import is_rank_zero as rank_zero  # keeps `--help` free of torch

    return rank_zero()


def run(cfg: DictConfig, run_dir: Path) -> dict:
    import pytorch_lightning as pl

    pipeline = pipeline_class(cfg.pipeline)
    set_threads(cfg.get("threads"))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    metrics = pipeline(cfg, run_dir).run()
    if is_rank_zero():  # the other DDP processes of the run hold the same metrics
        print_summary(pipeline, metrics)
        log.info("results in %s", run_dir)
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _main(cfg: DictConfig) -> None:
    with one_line_errors(speaks=is_rank_zero):
        if cfg.get("gpu_per_job"):
            pin_gpu(HydraConfig.get().job.num)
        run(cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    with one_line_errors():  # every bad config as one line before any work (and before torch is imported)
        precheck(sys.argv[1:], CONF_DIR)
    _main()


if __name__ == "__main__":
    main()
