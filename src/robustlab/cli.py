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

from robustlab.errors import RobustlabError, one_line_errors, require

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
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

    from robustlab.pipelines import tracking

    pipeline = pipeline_class(cfg.pipeline)
    tracking.check_installed(cfg.get("logger"))  # a missing tracker package: one line before any work
    set_threads(cfg.get("threads"))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    metrics = pipeline(cfg, run_dir).run()
    if is_rank_zero():  # the other DDP processes of the run hold the same metrics
        tracking.publish(cfg.get("logger"), run_dir, metrics)  # every pipeline's numbers, to the chosen trackers
        print_summary(pipeline, metrics)
        log.info("results in %s", run_dir)
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _main(cfg: DictConfig) -> None:
    with one_line_errors(speaks=is_rank_zero):
        if cfg.get("gpu_per_job"):
            pin_gpu(HydraConfig.get().job.num)
        run(cfg, Path(HydraConfig.get().runtime.output_dir))


def unknown_option(overrides: list[str]) -> str | None:
    """The first ``group=option`` override naming an option its config group lacks (``hydra/launcher=nope``,
    ``trainer=tpu``), as one line naming the options there are; None when every option exists.

    Hydra's own message for this spans a dozen lines; checking first keeps every bad input to one line.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl  # the loader Hydra itself lists options with
    from hydra._internal.utils import create_config_search_path

    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(CONF_DIR))
    for override in overrides:
        group, _, value = override.lstrip("+~").partition("=")
        sweep_function = "(" in value  # choice(...), glob(...): Hydra's own syntax, left to Hydra
        if override.startswith("-") or not value or sweep_function or "." in group or not loader.repository.group_exists(group):
            continue
        options = loader.get_group_options(group)
        for option in value.strip("[]").split(","):  # a multirun sweeps several; [a,b] picks several (logger=[a,b])
            if option not in options and option != "null":
                return f"unknown {group} option '{option}' in {override}; the options are: {', '.join(options)}"
    return None


def main() -> None:
    with one_line_errors():
        problem = unknown_option(sys.argv[1:])
        require(problem is None, str(problem))
    _main()


if __name__ == "__main__":
    main()
