"""The names of the files a run leaves in its folder: the one place they are spelled out.

A run folder (a single run, or one job of a multirun) holds Hydra's ``.hydra/`` (the composed
config, written before the job starts), the log, the pipeline's result files and, last of all,
the job marker that says whether the job is done (see robustlab.runs.jobs).
"""

from __future__ import annotations

from pathlib import Path

METRICS = "metrics.json"  # every pipeline's summary (robustlab.runs.schema): the run's numbers
JOB_MARKER = "job.json"  # running / done / failed, with the job's identity; "done" is written last
TIMINGS = "timings.json"  # per profile folder: wall seconds of each run group of `make reproduce`
HYDRA_DIR = ".hydra"  # Hydra's config.yaml / overrides.yaml of the job (kept when a job restarts)
HYDRA_CONFIG = f"{HYDRA_DIR}/config.yaml"
MULTIRUN = "multirun.yaml"  # in a multirun folder, beside its job folders
LOG = "cli.log"  # Hydra's job log (the entry point's module is robustlab.cli)
RPR_EXAMPLES = "examples_M_test.npz"  # rpr_retrain: test images of M with their first failures
RPR_SUMMARY = "rpr_summary.csv"
ATTACK_CURVE = "attack_curve.csv"  # linear_robust
WEIGHTS = "weights.npz"
MISCLASSIFIED = "misclassified.npz"
CLASS_HISTOGRAM = "class_histogram.csv"  # dcgan
INTERPOLATION = "interpolation"  # dcgan: .npz (the images) and .png
AUGMENT_TABLE = "augment_table.csv"  # rpr_gan_augment
GENERATED_EXAMPLES = "generated_examples.npz"
REPRODUCE = "reproduce"  # <output root>/reproduce/<profile>/<group>: the runs of `make reproduce`


def rpr_file(name: str) -> str:
    """Per-datapoint RPR results of one model and split, e.g. rpr_M_test.csv."""
    return f"rpr_{name}.csv"


def checkpoint_file(name: str) -> str:
    """A model saved by a run, e.g. M.ckpt, M_R.ckpt, G.ckpt."""
    return f"{name}.ckpt"


def metrics_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / METRICS


def marker_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / JOB_MARKER


def profile_dir(root: str | Path, profile: str) -> Path:
    """Where `make reproduce` puts one profile's run groups (and its timings.json)."""
    return Path(root) / REPRODUCE / profile


def group_dir(root: str | Path, profile: str, group: str) -> Path:
    return profile_dir(root, profile) / group


# Files of a job folder that belong to the current start, not to an earlier attempt: a restarted
# job clears everything else (Hydra has written .hydra/ and opened the log before the job runs).
KEPT_ON_RESTART = (HYDRA_DIR, LOG)
