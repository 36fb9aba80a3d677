"""DCGAN (Radford et al. 2016) as a Lightning module with manual optimisation, with the options of
shared/seeds/000: minibatch discrimination, a semi-supervised discriminator (Salimans et al. 2016)
and class-conditional networks.

Architecture (Radford et al.): G projects the latent code to a small base x base map, then doubles
it with stride-2 transposed convolutions (batch norm + ReLU, tanh output); D mirrors it with
stride-2 convolutions (LeakyReLU 0.2, batch norm except on its input layer), flattened into one
linear output. No pooling, no other fully connected layers. Weights start from N(0, 0.02).

Value range: the rest of the project works on images in [0, 1], so that is the interface here
too. Inside, the convention of Radford et al. is kept: G's last layer is tanh and its output is
rescaled by (t + 1) / 2; D maps its input back by 2x - 1. (This equals a sigmoid output of twice the
pre-activation; keeping tanh keeps the paper's architecture literal and D's input centred.)

Image sizes: square sides b * 2^n with b in 3..7 and n >= 1, the number of doublings read off the
data's input_shape: 28 = 7 * 2^2 (MNIST, Fashion-MNIST), 32 = 4 * 2^3 (CIFAR-10), 64 = 4 * 2^4.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn
from torchvision.utils import make_grid

from robustlab.errors import require
from robustlab.models.classifier import ImageClassifier
from robustlab.models.minibatch import MinibatchDiscrimination

LATENTS = ("uniform", "normal")
SAMPLES = "samples"  # folder of the fixed-noise grids, under the run's log folder (run_dir/G)


def upsampling_plan(input_shape) -> tuple[int, int]:
    """(base side, doublings n): G grows a base x base map to the image in n stride-2 steps; D shrinks it back."""
    _, h, w = input_shape
    side, n = h, 0
    while side >= 8 and side % 2 == 0:
        side, n = side // 2, n + 1
    require(
        h == w and n >= 1 and 3 <= side <= 7,
        f"DCGAN cannot produce {h}x{w} images: it needs square images of side b*2^n with b in 3..7 and n >= 1 (e.g. "
        "28, 32, 64)",
    )
    return side, n


def one_hot(labels: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels, num_classes).to(like.dtype)


class Generator(nn.Module):
    """z (and, if conditional, the one-hot class) -> image in [0, 1]."""

    def __init__(self, input_shape, latent_dim: int, width: int, num_classes: int = 0):
        super().__init__()
        base, n = upsampling_plan(input_shape)
        widths = [width * 2 ** (n - 1 - i) for i in range(n)]  # halves at each doubling, as in Radford et al.
        self.num_classes = num_classes
        self.project = nn.Sequential(
            nn.Linear(latent_dim + num_classes, widths[0] * base * base, bias=False),
            nn.Unflatten(1, (widths[0], base, base)),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        )
        layers = []
        for a, b in zip(widths, widths[1:], strict=False):  # consecutive pairs: one fewer than the widths
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        self.body = nn.Sequential(*layers, nn.ConvTranspose2d(widths[-1], input_shape[0], 4, 2, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, one_hot(labels, self.num_classes, z)], 1)
        return (self.body(self.project(z)) + 1) / 2


class Discriminator(nn.Module):
    """Image in [0, 1] (and, if conditional, its class as one-hot planes) -> ``outputs`` logits."""

    def __init__(
        self,
        input_shape,
        width: int,
        outputs: int = 1,
        num_classes: int = 0,
        minibatch_discrimination: bool = False,
        mbd_kernels: int = 32,
        mbd_kernel_dim: int = 8,
    ):
        super().__init__()
        base, n = upsampling_plan(input_shape)
        widths = [width * 2**i for i in range(n)]
        self.num_classes = num_classes
        layers = [
            nn.Conv2d(input_shape[0] + num_classes, widths[0], 4, 2, 1),
            nn.LeakyReLU(0.2, True),
        ]  # no batch norm on the input layer
        for a, b in zip(widths, widths[1:], strict=False):  # consecutive pairs: one fewer than the widths
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)]
        self.body = nn.Sequential(*layers, nn.Flatten())
        features = widths[-1] * base * base
        self.mbd = MinibatchDiscrimination(features, mbd_kernels, mbd_kernel_dim) if minibatch_discrimination else None
        self.head = nn.Linear(features + (self.mbd.out_extra if self.mbd else 0), outputs)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, with_features: bool = False):
        x = 2 * x - 1
        if self.num_classes:
            planes = one_hot(labels, self.num_classes, x)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, planes], 1)
        features = self.body(x)
        logits = self.head(self.mbd(features) if self.mbd is not None else features)
        return (logits, features) if with_features else logits


def init_weights(module: nn.Module) -> None:
    """Radford et al.: every weight from N(0, 0.02); batch-norm scales from N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def check_options(
    latent_dim, latent, g_width, d_width, lr, betas, semi_supervised, conditional, labels_per_class, every, grid
) -> None:
    """Every option of :class:`DCGAN` that can be checked before any data is read, one line each."""
    require(
        isinstance(latent_dim, int) and latent_dim >= 1,
        f"model.latent_dim must be a positive integer, got {latent_dim}",
    )
    require(latent in LATENTS, f"model.latent must be one of {', '.join(LATENTS)}, got '{latent}'")
    require(min(g_width, d_width) >= 1, f"model.g_width and model.d_width must be >= 1, got {g_width} and {d_width}")
    require(
        lr > 0 and len(betas) == 2 and all(0 <= b < 1 for b in betas),
        f"model.lr must be > 0 and model.betas two numbers in [0, 1), got {lr} and {list(betas)}",
    )
    require(
        not (semi_supervised and conditional),
        "model.semi_supervised and model.conditional exclude each other: "
        "the semi-supervised D learns the classes from few labels, the conditional one is told them",
    )
    require(
        not semi_supervised or (isinstance(labels_per_class, int) and labels_per_class >= 1),
        f"model.labels_per_class must be a positive integer, got {labels_per_class}",
    )
    require(
        every >= 1 and grid >= 1,
        f"model.sample_every_n_steps and model.sample_grid must be >= 1, got {every} and {grid}",
    )


def write_file(path: Path, data: bytes) -> Path:
    """A plain write (the folder made first): the default of DCGAN.write_grid."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class DCGAN(pl.LightningModule):
    """G and D trained in turn, one Adam each (lr 2e-4, betas (0.5, 0.999)); one step = one D then one G update.

    ``semi_supervised``: D has K+1 outputs (K classes + "generated"); its loss is Salimans et al.'s
    L_supervised (cross-entropy over the K class logits on a batch of the labelled images set by
    :meth:`set_labeled`) + L_unsupervised (real images are not "generated", G's images are). Written
    with r(x) = logsumexp(class logits) - generated logit, L_unsupervised is the usual GAN loss on r.
    ``feature_matching``: G matches the mean of D's last features on real images (Salimans et al.,
    their choice for semi-supervised learning) instead of the non-saturating loss -log D(G(z)).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        latent_dim: int = 100,
        latent: str = "uniform",
        g_width: int = 64,
        d_width: int = 64,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        minibatch_discrimination: bool = False,
        mbd_kernels: int = 32,
        mbd_kernel_dim: int = 8,
        semi_supervised: bool = False,
        labels_per_class: int = 10,
        feature_matching: bool = False,
        conditional: bool = False,
        sample_every_n_steps: int = 100,
        sample_grid: int = 64,
        seed: int = 0,
    ):
        super().__init__()
        check_options(
            latent_dim,
            latent,
            g_width,
            d_width,
            lr,
            betas,
            semi_supervised,
            conditional,
            labels_per_class,
            sample_every_n_steps,
            sample_grid,
        )
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        classes = num_classes if conditional else 0
        self.generator = Generator(self.input_shape, latent_dim, g_width, classes)
        self.discriminator = Discriminator(
            self.input_shape,
            d_width,
            num_classes + 1 if semi_supervised else 1,
            classes,
            minibatch_discrimination,
            mbd_kernels,
            mbd_kernel_dim,
        )
        self.apply(init_weights)
        # Fixed noise (and, if conditional, one class per grid column): the grids over training are comparable.
        self.register_buffer("fixed_noise", self.noise(sample_grid, torch.Generator().manual_seed(seed)))
        self.register_buffer("fixed_labels", torch.arange(sample_grid) % num_classes)
        self.register_buffer("labeled_images", torch.empty(0, *self.input_shape), persistent=False)
        self.register_buffer("labeled_labels", torch.empty(0, dtype=torch.int64), persistent=False)
        self.iteration = 0  # training steps done (one D and one G update each); the logs' "step"

    # -- sampling -------------------------------------------------------------------------------

    def noise(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """n latent codes: U(-1, 1) as in Radford et al., or N(0, 1)."""
        shape = (n, self.hparams.latent_dim)
        if self.hparams.latent == "uniform":
            return torch.rand(shape, generator=generator, device=device) * 2 - 1
        return torch.randn(shape, generator=generator, device=device)

    @property
    def grid_columns(self) -> int:
        return self.num_classes if self.hparams.conditional else math.ceil(math.sqrt(self.hparams.sample_grid))

    @torch.no_grad()
    def generate(self, noise: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 500) -> torch.Tensor:
        """Images (on the CPU) for the given codes, G in eval mode (batch norm from its running statistics)."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            out = [
                self.generator(
                    noise[i : i + batch_size].to(self.device),
                    None if labels is None else labels[i : i + batch_size].to(self.device),
                ).cpu()
                for i in range(0, len(noise), batch_size)
            ]
        finally:
            self.generator.train(was_training)
        return torch.cat(out) if out else torch.empty(0, *self.input_shape)

    def fixed_samples(self) -> torch.Tensor:
        return self.generate(self.fixed_noise, self.fixed_labels if self.hparams.conditional else None)

    # -- losses -----------------------------------------------------------------------------------

    def set_labeled(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """The few labelled images of the semi-supervised D (not saved in checkpoints)."""
        self.labeled_images, self.labeled_labels = images.to(self.device), labels.to(self.device)

    def realness(self, logits: torch.Tensor) -> torch.Tensor:
        """The logit of "real": D's one output, or, with K+1 outputs, logsumexp(class logits) - generated logit."""
        if not self.hparams.semi_supervised:
            return logits[:, 0]
        return torch.logsumexp(logits[:, :-1], 1) - logits[:, -1]

    def conditioning(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        return labels if self.hparams.conditional else None

    def discriminator_loss(self, real, labels, fake, fake_labels) -> tuple[torch.Tensor, dict]:
        r_real = self.realness(self.discriminator(real, self.conditioning(labels)))
        r_fake = self.realness(self.discriminator(fake, self.conditioning(fake_labels)))
        loss = F.binary_cross_entropy_with_logits(r_real, torch.ones_like(r_real)) + F.binary_cross_entropy_with_logits(
            r_fake, torch.zeros_like(r_fake)
        )
        stats = {"d_real": torch.sigmoid(r_real).mean(), "d_fake": torch.sigmoid(r_fake).mean()}
        if self.hparams.semi_supervised:
            stats["d_supervised"] = self.supervised_loss(len(real))
            loss = loss + stats["d_supervised"]
        return loss, stats

    def supervised_loss(self, batch_size: int) -> torch.Tensor:
        require(
            len(self.labeled_images) > 0,
            "semi-supervised DCGAN has no labelled images; the pipeline sets them with set_labeled()",
        )
        pick = torch.randint(len(self.labeled_images), (batch_size,), device=self.labeled_images.device)
        logits = self.discriminator(self.labeled_images[pick])
        return F.cross_entropy(logits[:, :-1], self.labeled_labels[pick])

    def generator_loss(self, fake, fake_labels, real=None, labels=None) -> torch.Tensor:
        if self.hparams.feature_matching:
            _, f_fake = self.discriminator(fake, self.conditioning(fake_labels), with_features=True)
            with torch.no_grad():
                _, f_real = self.discriminator(real, self.conditioning(labels), with_features=True)
            return (f_real.mean(0) - f_fake.mean(0)).pow(2).mean()
        r_fake = self.realness(self.discriminator(fake, self.conditioning(fake_labels)))
        return F.binary_cross_entropy_with_logits(
            r_fake, torch.ones_like(r_fake)
        )  # non-saturating: maximise log D(G(z))

    # -- training ---------------------------------------------------------------------------------

    def check_finite(self, loss: torch.Tensor, network: str) -> None:
        """Stop before a non-finite loss reaches the weights (or a sample grid)."""
        require(
            bool(torch.isfinite(loss)),
            f"{network} loss is {loss.item()} at training step {self.iteration}; "
            "the GAN diverged: lower model.lr or change the model options, then rerun",
        )

    def update(self, optimizer, loss: torch.Tensor, network: str) -> None:
        self.check_finite(loss, network)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()

    def training_step(self, batch, batch_idx):
        real, labels = batch
        opt_g, opt_d = self.optimizers()
        n = len(real)
        fake_labels = torch.randint(self.num_classes, (n,), device=real.device) if self.hparams.conditional else None
        fake = self.generator(self.noise(n, device=real.device), fake_labels)
        # The toggles freeze the other network's weights, so each update computes only its own gradients.
        self.toggle_optimizer(opt_d)
        loss_d, stats = self.discriminator_loss(real, labels, fake.detach(), fake_labels)
        self.update(opt_d, loss_d, "discriminator")
        self.untoggle_optimizer(opt_d)
        self.toggle_optimizer(opt_g)
        loss_g = self.generator_loss(fake, fake_labels, real, labels)
        self.update(opt_g, loss_g, "generator")
        self.untoggle_optimizer(opt_g)
        self.iteration += 1
        self.log_dict(
            {"train/d_loss": loss_d.detach(), "train/g_loss": loss_g.detach()},
            prog_bar=True,
            on_step=True,
            on_epoch=False,
        )
        self.log_dict({f"train/{k}": v.detach() for k, v in stats.items()}, on_step=True, on_epoch=False)

    def configure_optimizers(self):
        betas = tuple(self.hparams.betas)
        return [
            torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas),
        ]

    # How the sample grids reach the disk: a plain write here (the model does no run I/O); the pipeline
    # sets robustlab.runs.io.atomic_write_bytes (robustlab.pipelines.dcgan.train_gan).
    write_grid: Callable[[Path, bytes], object] = staticmethod(write_file)

    def configure_callbacks(self):
        return [SampleGrid(self.hparams.sample_every_n_steps)]

    # A resumed fit (robustlab.pipelines.resume) continues the step count the logs and grids are named by.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dcgan_iteration"] = self.iteration

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.iteration = int(checkpoint.get("dcgan_iteration", 0))


class DiscriminatorClassifier(ImageClassifier):
    """D's architecture as a plain K-class classifier: the baseline of the semi-supervised D.

    Trained on the N labelled images alone with cross-entropy over K logits, which is Salimans et
    al.'s L_supervised (the "generated" row of the K+1-output head gets no gradient from it).
    """

    def __init__(
        self,
        input_shape=(1, 28, 28),
        num_classes: int = 10,
        d_width: int = 64,
        minibatch_discrimination: bool = False,
        mbd_kernels: int = 32,
        mbd_kernel_dim: int = 8,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
    ):
        super().__init__(input_shape, num_classes, lr)
        self.save_hyperparameters()
        self.net = Discriminator(
            self.input_shape, d_width, num_classes, 0, minibatch_discrimination, mbd_kernels, mbd_kernel_dim
        )
        self.net.apply(init_weights)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, betas=tuple(self.hparams.betas))


def png_bytes(images: torch.Tensor, columns: int) -> tuple[bytes, torch.Tensor]:
    """A grid of images in [0, 1] as PNG bytes, and the grid tensor (3, H, W) for TensorBoard."""
    grid = make_grid(images.clamp(0, 1), nrow=columns, padding=2, pad_value=1.0)
    pixels = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue(), grid


def save_grid(path: Path, images: torch.Tensor, columns: int, write: Callable[[Path, bytes], object]) -> torch.Tensor:
    """The grid as a PNG at ``path``, written by ``write(path, data)``; the grid tensor."""
    data, grid = png_bytes(images, columns)
    write(path, data)
    return grid


class SampleGrid(pl.Callback):
    """G's images for the fixed noise, before training, every ``every_n_steps`` steps and at the end:
    ``<log dir>/samples/step_NNNNNN.png`` and, when a TensorBoard logger is attached, its image tab."""

    def __init__(self, every_n_steps: int):
        self.every_n_steps = every_n_steps

    def save(self, trainer: pl.Trainer, module: DCGAN) -> None:
        if not trainer.is_global_zero:
            return
        path = Path(trainer.log_dir or trainer.default_root_dir) / SAMPLES / f"step_{module.iteration:06d}.png"
        grid = save_grid(path, module.fixed_samples(), module.grid_columns, module.write_grid)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, module.iteration)

    def on_train_start(self, trainer, module) -> None:
        if module.iteration == 0:  # a resumed fit saved its earlier grids before it was stopped
            self.save(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if module.iteration % self.every_n_steps == 0:
            self.save(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        if module.iteration % self.every_n_steps != 0:
            self.save(trainer, module)
