"""Hydra entry point: ``robustlab experiment=rpr_mnist profile=quick`` (see conf/ and README).

Configuration errors and bad input end the run with one line on stderr and exit status 2, never a
traceback; anything else is a bug and keeps its traceback.

Every run, and every job of a multirun (basic, joblib or SLURM launcher alike), checks its own job
marker first (robustlab.runs.jobs): a job already done with the same identity (config less the keys
that cannot change a result, plus the code version) prints "skipped: already done (<identity>)" and
does no work; otherwise what an earlier attempt left is cleared, the job runs, and "done" is written
last. ROBUSTLAB_FORCE=1 runs every job again. A job of a multirun that fails records why and lets the
sweep go on: the command then ends with exit status 2 (bad input; basic launcher) or Hydra's exit 1.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

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
        raise RobustlabError(
            f"unknown pipeline '{path}'; set pipeline to a class path or pick an experiment=... preset"
        ) from None


def summary_lines(pipeline: type, metrics: dict) -> list[str]:
    """What to print at the end of a run: the claims the pipeline names (``pipeline.claims``: their
    header, source and metrics), judged by the report's claims engine, then the pipeline's own lines."""
    # Imported here: the claims engine pulls in pandas, which `--help` should not wait for.
    from robustlab.report.claims import claims_table

    claims = getattr(pipeline, "claims", None)
    lines = claims_table(**claims(metrics)) if claims is not None else []
    return lines + pipeline.summary_lines(metrics)


def print_summary(pipeline: type, metrics: dict) -> None:
    for line in summary_lines(pipeline, metrics):
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


class JobFailed(CompactHydraException):
    """A job of a multirun failed: Hydra runs the sweep's other jobs, then ends with this one line and exit 1."""


FAILED_JOBS: list[str] = []  # jobs of this process's multirun that stopped on bad input (basic launcher)
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")  # the ones Lightning reads


def owns_marker() -> bool:
    """Only the first process of a run keeps its job marker: the other processes of a DDP run, which
    Lightning starts with a rank in the environment, never clear or mark the folder. Read from the
    environment, so a job that is already done is skipped without importing torch."""
    ranks = [os.environ[v] for v in RANK_VARIABLES if os.environ.get(v, "").isdigit()]
    return not ranks or int(ranks[0]) == 0


def in_process_launcher() -> bool:
    """Hydra's basic launcher runs the jobs in this process, so main() sees their failures at the end."""
    return "BasicLauncher" in str(HydraConfig.get().launcher.get("_target_", ""))


def job_failed(run_dir: Path, line: str) -> None:
    """A job of a multirun stopped: its one line now; the sweep goes on. With the basic launcher main()
    exits 2 after the sweep; other launchers run jobs elsewhere, so Hydra reports it (exit 1)."""
    print(f"error: {line}", file=sys.stderr, flush=True)
    if not in_process_launcher():
        raise JobFailed(f"error: {line}") from None
    FAILED_JOBS.append(f"{run_dir}: {line}")


def run_job(cfg: DictConfig, run_dir: Path, overrides: list[str], multirun: bool) -> None:
    """One job under its marker: skipped when done, else cleared, run, and marked done or failed."""
    from robustlab.runs import jobs
    from robustlab.runs.identity import job_identity

    identity = job_identity(OmegaConf.to_container(cfg, resolve=True))
    if not jobs.forced() and jobs.state(run_dir, identity).state == jobs.DONE:
        print(f"skipped: already done ({identity}) in {run_dir}", flush=True)
        log.info("skipped: already done (%s)", identity)
        return
    jobs.begin(run_dir, identity, overrides)
    try:
        run(cfg, run_dir)
    except RobustlabError as error:
        jobs.fail(run_dir, str(error))
        if not multirun:
            raise
        return job_failed(run_dir, str(error))
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        jobs.fail(run_dir, f"exit status {exit_.code}")
        if not multirun:
            raise
        return job_failed(run_dir, f"exit status {exit_.code}")
    except Exception as error:  # a bug: the traceback stays (Hydra prints it after the sweep's other jobs)
        jobs.fail(run_dir, f"{type(error).__name__}: {error}".splitlines()[0][:300])
        raise
    jobs.finish(run_dir)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    with one_line_errors(speaks=is_rank_zero):
        if cfg.get("gpu_per_job"):
            pin_gpu(hydra_cfg.job.num)
        run_dir = Path(hydra_cfg.runtime.output_dir)
        if not owns_marker():
            run(cfg, run_dir)
            return
        run_job(cfg, run_dir, list(hydra_cfg.overrides.task), hydra_cfg.mode == RunMode.MULTIRUN)


def main() -> None:
    with one_line_errors():  # every bad config as one line before any work (and before torch is imported)
        precheck(sys.argv[1:], CONF_DIR)
    _main()
    if FAILED_JOBS:  # each already said why in one line; the other jobs of the sweep ran
        raise SystemExit(2)


if __name__ == "__main__":
    main()
