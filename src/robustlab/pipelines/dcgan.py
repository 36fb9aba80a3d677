"""DCGAN runs (shared/seeds/000): ``robustlab experiment=dcgan_mnist`` or ``experiment=dcgan_cifar10``.

Trains G and D (robustlab.models.dcgan), then, from the trained G: latent interpolations and the
download-free quality checks of robustlab.evaluation (Fréchet distance in the feature space of the
project's SimpleCNN, which is NOT the Inception FID, and the histogram of predicted classes). With
``model.semi_supervised=true`` the K+1-output D is scored as a classifier on the test set beside the
same architecture trained on the same few labels alone. Everything lands in the run directory:

  G/metrics.csv             losses per logged step (Lightning's CSV logger; "step" = training step)
  G/samples/step_NNNNNN.png G's images for a fixed noise, before training, every model.sample_every_n_steps and at
                            the end
  G.ckpt                    G and D (Lightning checkpoint)
  interpolation.npz, .png   G's images along straight lines between pairs of latent codes
  class_histogram.csv       classes the quality classifier predicts for generated and for real test images
  D_labels_only/, .ckpt     the semi-supervised baseline (only with model.semi_supervised=true)
  metrics.json              options, steps, final losses, quality, semi-supervised accuracies, timings
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from robustlab import results
from robustlab.config import build
from robustlab.data import Split, VisionDataModule, sample_points
from robustlab.errors import require
from robustlab.evaluation import load_judge, quality_report
from robustlab.models.dcgan import DCGAN, DiscriminatorClassifier, save_grid
from robustlab.pipelines.devices import compute_device, runtime_info
from robustlab.pipelines.gan_training import generate, train_gan, with_epochs
from robustlab.pipelines.resume import resume_from_config
from robustlab.pipelines.training import accuracy, fit_classifier, timed
from robustlab.robustness.subsets import balanced_subset
from robustlab.runs import layout
from robustlab.runs.io import atomic_write_bytes

log = logging.getLogger(__name__)

PIPELINE = "dcgan"
INTERPOLATION = "interpolation"
HISTOGRAM = layout.CLASS_HISTOGRAM
OPTIONS = ("minibatch_discrimination", "semi_supervised", "feature_matching", "conditional")


def interpolate(model: DCGAN, pairs: int, steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(pairs, steps, C, H, W): G along the straight line between two seeded codes per row (Radford et al.
    Sec. 6.1); a conditional G keeps one class per row. Also returns the rows' classes (or None)."""
    ends = model.noise(2 * pairs, torch.Generator().manual_seed(seed)).view(2, pairs, 1, -1)
    alpha = torch.linspace(0.0, 1.0, steps).view(1, steps, 1)
    codes = ((1 - alpha) * ends[0] + alpha * ends[1]).reshape(pairs * steps, -1)
    classes = torch.arange(pairs) % model.num_classes if model.hparams.conditional else None
    images = model.generate(codes, None if classes is None else classes.repeat_interleave(steps))
    return images.view(pairs, steps, *model.input_shape), classes


class DCGANRun:
    """One run; ``cfg`` is the resolved Hydra config (experiment=dcgan_mnist / dcgan_cifar10)."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir, self.timings = cfg, Path(run_dir), {}
        self.data: VisionDataModule = build(cfg.data)
        self.model = build(cfg.model, input_shape=self.data.input_shape, num_classes=self.data.num_classes)
        require(
            isinstance(self.model, DCGAN), f"pipeline {PIPELINE} needs model=dcgan, got {type(self.model).__name__}"
        )
        i, q = cfg.interpolation, cfg.quality
        require(
            isinstance(i.pairs, int) and i.pairs >= 1 and isinstance(i.steps, int) and i.steps >= 2,
            f"interpolation.pairs must be >= 1 and interpolation.steps >= 2, got {i.pairs} and {i.steps}",
        )
        require(
            isinstance(q.samples, int) and q.samples >= 2 and isinstance(q.batch_size, int) and q.batch_size >= 1,
            f"quality.samples must be an integer >= 2 and quality.batch_size >= 1, got {q.samples} and {q.batch_size}",
        )
        # Loaded now: a missing or wrong classifier stops the run before any training.
        self.judge = None if q.classifier is None else load_judge(q.classifier, self.data.input_shape)
        if self.judge is not None:
            self.judge = self.judge.to(compute_device(cfg.trainer))

    @property
    def hp(self):
        return self.model.hparams

    def run(self) -> dict:
        started = time.perf_counter()
        self.data.setup()  # reads the data (or fails in one line) before any training
        labeled = self.labeled_subset() if self.hp.semi_supervised else None
        metrics = self.metrics()
        resume = resume_from_config(self.cfg)
        metrics["training"] = train_gan(
            self.model, self.data, self.cfg.trainer, self.run_dir, self.timings, resume, self.cfg.get("logger")
        )
        with timed(self.timings, "interpolation"):
            self.save_interpolation()
        if self.judge is not None:
            with timed(self.timings, "quality"):
                metrics["quality"] = self.quality()
        if labeled is not None:
            metrics["semi_supervised"] = self.semi_supervised(labeled)
        metrics["runtime"] = runtime_info(self.model)  # strings: device and library versions
        metrics["timings_s"], metrics["wall_time_s"] = self.timings, round(time.perf_counter() - started, 1)
        results.write_metrics(self.run_dir, metrics)
        return metrics

    def labeled_subset(self) -> Split:
        """``labels_per_class`` labelled training images per class for the semi-supervised D (seeded)."""
        train, k, n = self.data.train, self.data.num_classes, self.hp.labels_per_class
        counts = np.bincount(train.labels.numpy(), minlength=k)
        require(
            n <= counts.min(),
            f"model.labels_per_class={n} is larger than the smallest class of the {len(train)} training images "
            f"(class {int(counts.argmin())} has {int(counts.min())}); lower it or use more training images",
        )
        chosen, _ = balanced_subset(train.index.numpy(), train.labels.numpy(), k, n, "error", seed=self.cfg.seed)
        labeled = VisionDataModule.restrict(train, torch.as_tensor(chosen))
        self.model.set_labeled(labeled.images, labeled.labels)
        return labeled

    def save_interpolation(self) -> None:
        i = self.cfg.interpolation
        images, classes = interpolate(self.model, i.pairs, i.steps, self.cfg.seed + 1)
        extra = {} if classes is None else {"classes": classes.numpy()}
        results.write_arrays(
            self.run_dir / f"{INTERPOLATION}.npz", images=images.numpy(), alpha=np.linspace(0.0, 1.0, i.steps), **extra
        )
        save_grid(self.run_dir / f"{INTERPOLATION}.png", images.flatten(0, 1), i.steps, atomic_write_bytes)

    def quality(self) -> dict:
        """Fréchet distance and class histograms, all sets of one size (the distance's bias depends on it)."""
        q, k = self.cfg.quality, self.data.num_classes
        n = min(q.samples, len(self.data.test), len(self.data.train))
        intended = torch.arange(n) % k if self.hp.conditional else None
        generated = generate(self.model, n, self.cfg.seed + 2, intended)
        real = sample_points(self.data.test, n, self.cfg.seed).images
        other = sample_points(self.data.train, n, self.cfg.seed).images  # train and test images never overlap
        report = quality_report(
            self.judge, generated, real, k, other_real=other, intended=intended, batch_size=q.batch_size
        )
        report["classifier"] = str(Path(q.classifier).resolve())
        results.write_table(
            self.run_dir / HISTOGRAM,
            {"class": np.arange(k), "generated": report["generated_classes"], "real_test": report["real_classes"]},
        )
        log.info(
            "Fréchet distance in SimpleCNN features (not FID): %.3f (real vs real: %.3f); classes of generated "
            "images: %s",
            report["frechet_distance"],
            report["frechet_distance_real_vs_real"],
            report["generated_classes"],
        )
        return report

    def semi_supervised(self, labeled: Split) -> dict:
        """Test accuracy of the semi-supervised D vs D's architecture trained on the same labels alone, for
        as many updates. Both are scored in batches of the training batch size: with minibatch
        discrimination an image's score depends on the batch it is in."""
        hp, batch = self.hp, self.data.batch_size
        discriminator = self.model.discriminator.eval()
        device = self.model.device  # the callable gets CPU batches; D may sit on the GPU
        gan_accuracy = accuracy(lambda x: discriminator(x.to(device))[:, :-1].cpu(), self.data.test, batch)
        baseline = DiscriminatorClassifier(
            self.data.input_shape,
            self.data.num_classes,
            hp.d_width,
            hp.minibatch_discrimination,
            hp.mbd_kernels,
            hp.mbd_kernel_dim,
            hp.lr,
            tuple(hp.betas),
        )
        epochs = max(1, math.ceil(self.model.iteration / math.ceil(len(labeled) / batch)))
        with timed(self.timings, "train_D_labels_only"):
            fit_classifier(
                baseline,
                self.data.with_train_index(labeled.index),
                with_epochs(self.cfg.trainer, epochs),
                self.run_dir,
                "D_labels_only",
                resume=resume_from_config(self.cfg),
                logger_cfg=self.cfg.get("logger"),
            )
        return {
            "labels_per_class": hp.labels_per_class,
            "labelled_images": len(labeled),
            "gan_discriminator_test_accuracy": gan_accuracy,
            "labels_only_test_accuracy": accuracy(baseline, self.data.test, batch),
            "labels_only_epochs": epochs,
        }

    def metrics(self) -> dict:
        cfg = self.cfg
        return {
            "pipeline": PIPELINE,
            "profile": cfg.profile.name,
            "seed": cfg.seed,
            "data": {
                "name": cfg.data.name,
                "root": str(Path(cfg.data.root).resolve()),
                "train_images": len(self.data.train),
                "test_images": len(self.data.test),
            },
            "model": {k: v for k, v in self.hp.items() if k != "input_shape"}
            | {"input_shape": list(self.data.input_shape)},
            "options": [name for name in OPTIONS if self.hp[name]],
            "config": OmegaConf.to_container(cfg, resolve=True),
        }

    @staticmethod
    def summary_lines(metrics: dict) -> list[str]:
        """What the CLI prints after a run (the GAN source gives no numbers to compare with)."""
        d, m, t = metrics["data"], metrics["model"], metrics["training"]
        options = ", ".join(metrics["options"]) or "plain DCGAN"
        lines = [
            f"== {PIPELINE} | profile={metrics['profile']} seed={metrics['seed']} | data: {d['name']} "
            f"({d['train_images']} train images) | {options} | G/D widths {m['g_width']}/{m['d_width']}, latent "
            f"{m['latent_dim']} {m['latent']}",
            f"   {t['steps']} steps ({t['epochs']} epochs of batch {t['batch_size']}); last logged D loss "
            f"{t['final'].get('d_loss', float('nan')):.4f}, G loss {t['final'].get('g_loss', float('nan')):.4f}",
        ]
        q = metrics.get("quality")
        if q:
            lines.append(
                f"   Fréchet distance in SimpleCNN features (NOT the Inception FID), {q['generated_images']} images: "
                f"{q['frechet_distance']:.3f} generated vs real test; {q['frechet_distance_real_vs_real']:.3f} real "
                "train vs real test"
            )
            intended = (
                f"; made for that class: {q['classified_as_intended']:.3f}" if "classified_as_intended" in q else ""
            )
            lines.append(
                f"   classes the CNN sees in generated images: {q['generated_classes']} ({q['classes_covered']} "
                f"classes over 1%, normalised entropy {q['class_entropy']:.3f}){intended}"
            )
        s = metrics.get("semi_supervised")
        if s:
            lines.append(
                f"   semi-supervised D, {s['labelled_images']} labels: test accuracy "
                f"{s['gan_discriminator_test_accuracy']:.4f} vs {s['labels_only_test_accuracy']:.4f} for the same "
                "architecture trained on those labels alone"
            )
        return lines
