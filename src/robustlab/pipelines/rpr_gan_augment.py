"""The future work of shared/seeds/001 (Sec. 3): "using GANs to augment the robust training data".

``robustlab experiment=rpr_gan_augment`` runs the paper's pipeline unchanged (RPRRetrain: M, RPR of
M on train and test, the class-balanced robust subset, M_R), then:

  1. trains a class-conditional DCGAN on that robust subset (gan.model, gan.epochs, gan.batch_size);
  2. generates gan.samples_per_class images per class;
  3. keeps those RPR deems robust under M with their intended class as label, which means M
     classifies them as that class and no perturbation within MAX_STEPS changes its mind;
  4. trains M_R+G on the robust subset plus the kept images, and measures it like M_R.

The run directory holds everything of rpr_retrain, and: G/ and G.ckpt (the GAN, as in experiment
dcgan), rpr_G_samples.csv (RPR of M on every generated image; indices from 10^9 up),
generated_examples.npz (kept and rejected generated images), M_R_G/, M_R_G.ckpt, rpr_M_R_G_test.csv,
augment_table.csv (M, M_R, M_R+G side by side) and metrics.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from robustlab import results
from robustlab.config import build
from robustlab.data import Split, VisionDataModule, sample_points
from robustlab.errors import require
from robustlab.evaluation import quality_report
from robustlab.models.dcgan import DCGAN
from robustlab.pipelines.gan_training import generate, train_gan, with_epochs
from robustlab.pipelines.rpr_retrain import RPRRetrain
from robustlab.pipelines.training import accuracy
from robustlab.robustness.rpr import RPRResult
from robustlab.robustness.summary import summarise
from robustlab.runs import layout

log = logging.getLogger(__name__)

PIPELINE = "rpr_gan_augment"
# RPR draws a point's perturbations from its dataset index: generated images get indices of their
# own, far above any dataset's (and below 2**32, where the counter-based generator wraps).
GENERATED_INDEX = 1_000_000_000
TABLE = layout.AUGMENT_TABLE
EXAMPLES = layout.GENERATED_EXAMPLES
MODELS = {"M": "M", "M_R": "M_R", "M_R_G": "M_R+G"}  # metrics key -> name in the table and figures


def table_columns(metrics: dict) -> dict[str, list]:
    """M, M_R and M_R+G side by side, from a run's metrics."""
    sizes = {
        "M": metrics["data"]["train_images"],
        "M_R": metrics["subset"]["subset_size"],
        "M_R_G": metrics["subset"]["subset_size"] + metrics["gan"]["kept"],
    }
    rows = [(MODELS[k], sizes[k], metrics[k]["test_accuracy"], metrics[k]["test"]) for k in MODELS]
    return {
        "model": [r[0] for r in rows],
        "train_images": [r[1] for r in rows],
        "test_accuracy": [r[2] for r in rows],
        "robust_ratio": [r[3]["robust_ratio"] for r in rows],
        "robust_ratio_of_correct": [r[3]["robust_ratio_of_correct"] for r in rows],
        "test_points": [r[3]["points"] for r in rows],
    }


class RPRGanAugment(RPRRetrain):
    """RPRRetrain's run, extended after M_R (see the module docstring); ``cfg`` is the resolved config."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        super().__init__(cfg, run_dir)
        g = cfg.gan
        require(cfg.rpr.retrain, f"pipeline {PIPELINE} augments M_R's robust subset: it needs rpr.retrain=true")
        for key in ("samples_per_class", "epochs", "batch_size"):
            require(isinstance(g[key], int) and g[key] >= 1, f"gan.{key} must be a positive integer, got {g[key]}")
        # Built on a forked random stream: M and M_R must get exactly the initial weights they get in
        # experiment=rpr_mnist, so the M / M_R columns of both experiments agree.
        with torch.random.fork_rng():
            self.gan = build(g.model, input_shape=self.data.input_shape, num_classes=self.data.num_classes)
        require(
            isinstance(self.gan, DCGAN) and self.gan.hparams.conditional,
            "gan.model must be a class-conditional DCGAN (gan.model.conditional=true): each generated image needs the "
            "class it was made for",
        )
        self.trained_on: dict[str, VisionDataModule] = {}

    def train(self, data: VisionDataModule, name: str):
        """RPRRetrain's training, remembering each model's data (M_R's is the robust subset)."""
        self.trained_on[name] = data
        return super().train(data, name)

    def metrics(self) -> dict:
        return super().metrics() | {"pipeline": PIPELINE}

    def run(self) -> dict:
        metrics = super().run()
        results.write_table(self.run_dir / TABLE, table_columns(metrics))
        return metrics

    def retrain(self, model, test_points: Split) -> dict:
        """RPRRetrain's M_R, then G, the robust generated images and M_R+G."""
        out = super().retrain(model, test_points)
        robust = self.trained_on["M_R"]
        kept, out["gan"] = self.robust_generated(model, robust)
        model_g = self.train(self.augmented(robust, kept), "M_R_G")
        rpr = self.measure_points(model_g, test_points, "M_R_G_test")
        out["M_R_G"] = {
            "test_accuracy": accuracy(model_g, self.data.test),
            "test": summarise(rpr, self.data.num_classes),
        }
        return out

    def robust_generated(self, model_m, robust: VisionDataModule) -> tuple[Split, dict]:
        """Train G on the robust subset, generate, keep what RPR deems robust under M: (kept images, report)."""
        g, k, seed = self.cfg.gan, self.data.num_classes, self.cfg.seed
        gan_data = robust.with_train_index(robust.train.index)
        gan_data.batch_size = g.batch_size
        trainer = with_epochs(self.cfg.trainer, g.epochs)
        training = train_gan(
            self.gan, gan_data, trainer, self.run_dir, self.timings, self.resume, self.cfg.get("logger")
        )
        intended = torch.arange(k).repeat_interleave(g.samples_per_class)
        images = generate(self.gan, len(intended), seed + 3, intended)
        generated = Split(images, intended, GENERATED_INDEX + torch.arange(len(intended)))
        rpr = self.measure_points(model_m, generated, "G_samples")
        self.save_examples_generated(generated, rpr)
        keep = torch.as_tensor(rpr.robust)
        kept = generated.take(torch.nonzero(keep).flatten())
        if len(kept) == 0:
            log.warning("no generated image is robust under M: M_R+G is trained on the robust subset alone")
        report = {
            "training": training,
            "samples_per_class": g.samples_per_class,
            "generated": len(generated),
            "classified_as_intended": float(rpr.correct.mean()),
            "kept": len(kept),
            "kept_fraction": len(kept) / len(generated),
            "kept_per_class": np.bincount(kept.labels.numpy(), minlength=k).tolist(),
            # Quality in M's own feature space (M is a SimpleCNN of this data): generated vs test images.
            "quality": quality_report(
                model_m,
                images,
                sample_points(self.data.test, len(images), seed).images,
                k,
                other_real=robust.train.images,
                intended=intended,
            ),
        }
        log.info("kept %d of %d generated images (robust under M, classified as intended)", len(kept), len(generated))
        return kept, report

    @staticmethod
    def augmented(robust: VisionDataModule, kept: Split) -> VisionDataModule:
        """The robust subset's data module with the kept generated images added to its training split."""
        data = robust.with_train_index(robust.train.index)
        t = data.train
        data.train = Split(
            torch.cat([t.images, kept.images]), torch.cat([t.labels, kept.labels]), torch.cat([t.index, kept.index])
        )
        return data

    def save_examples_generated(self, generated: Split, rpr: RPRResult, count: int = 10) -> None:
        """Up to ``count`` kept and ``count`` rejected generated images (seeded pick) for the figure."""
        rng = np.random.default_rng(self.cfg.seed)
        pick = lambda mask: np.sort(rng.choice(np.flatnonzero(mask), size=min(count, int(mask.sum())), replace=False))  # noqa: E731
        kept, rejected = pick(rpr.robust), pick(~rpr.robust)
        results.write_arrays(
            self.run_dir / EXAMPLES,
            kept_images=generated.images[torch.as_tensor(kept, dtype=torch.int64)].numpy(),
            kept_labels=rpr.label[kept],
            rejected_images=generated.images[torch.as_tensor(rejected, dtype=torch.int64)].numpy(),
            rejected_labels=rpr.label[rejected],
            rejected_pred=rpr.clean_pred[rejected],
            rejected_step=rpr.first_failure[rejected],
        )

    @staticmethod
    def claims(metrics: dict) -> dict:
        """The paper's claims for M and M_R (trained here exactly as in rpr_retrain)."""
        claims = RPRRetrain.claims(metrics | {"pipeline": "rpr_retrain"})
        return claims | {"header": claims["header"].replace("rpr_retrain", PIPELINE, 1)}

    @staticmethod
    def summary_lines(metrics: dict) -> list[str]:
        """After the claims: how M_R was trained, then G and M_R+G."""
        lines = RPRRetrain.summary_lines(metrics | {"pipeline": "rpr_retrain"})
        g = metrics["gan"]
        lines.append(
            f"   G: conditional DCGAN, {g['training']['steps']} steps on the {g['training']['images']} robust images; "
            f"kept {g['kept']} of {g['generated']} generated images ({g['classified_as_intended']:.1%} classified "
            f"as intended), per class {g['kept_per_class']}"
        )
        t = table_columns(metrics)
        for i, name in enumerate(t["model"]):
            lines.append(
                f"   {name:<6} {t['train_images'][i]:>6} train images: test accuracy {t['test_accuracy'][i]:.4f}, "
                f"robust ratio {t['robust_ratio'][i]:.4f} ({t['robust_ratio_of_correct'][i]:.4f} of correct)"
            )
        return lines
