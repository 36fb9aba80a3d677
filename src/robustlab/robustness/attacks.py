"""White-box l-inf attacks and accuracy under attack over a grid of epsilons.

Two kinds of classifier are accepted everywhere:
  * a binary scorer returning scores f(x) of shape (N,), labels -1/+1, prediction sign(f(x))
    (a score of exactly 0 is wrong, as in the blog); the attack loss is the margin loss -y f(x);
  * a multi-class module returning logits (N, K), labels 0..K-1, prediction argmax; the attack loss
    is the cross-entropy.
The margin loss, not the hinge, drives the binary attack: the hinge's gradient vanishes once the
margin exceeds 1, which would leave confidently classified points unattacked. On a linear model
the sign of the margin loss's gradient is -y sign(w), so FGSM is the exact worst case there.

``clip`` clips the attacked images to [0, 1] (valid images); the blog does not clip.

For speed, attack ``robustness.fastpath.fast_forward(model, channels_last, compile, autocast)``, not the
model itself. Gradients flow through it, and its scores are float32, so the losses stay float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.errors import require

AttackFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]
ATTACKS = ("exact", "fgsm", "pgd")


def check_epsilon(eps: float) -> float:
    require(
        isinstance(eps, (int, float, np.floating)) and math.isfinite(eps) and eps >= 0,
        f"attack epsilon must be a finite number >= 0, got {eps}",
    )
    return float(eps)


def check_grid(epsilons: Sequence[float]) -> np.ndarray:
    """The epsilons as a float array: at least one, each finite and >= 0."""
    grid = list(epsilons)
    require(len(grid) > 0, "the epsilon grid is empty; give at least one epsilon (e.g. attack.epsilons.num >= 1)")
    return np.array([check_epsilon(e) for e in grid], dtype=np.float64)


def linspace_grid(spec) -> np.ndarray:
    """``{start, stop, num}`` (np.linspace, as the blog's grid) or an explicit list of epsilons."""
    if hasattr(spec, "keys"):
        missing = [k for k in ("start", "stop", "num") if k not in spec]
        require(
            not missing,
            f"an epsilon grid needs start, stop and num (or a list of epsilons); missing {', '.join(missing)}",
        )
        require(
            isinstance(spec["num"], int) and spec["num"] >= 1,
            f"the epsilon grid's num must be an integer >= 1, got {spec['num']}",
        )
        require(
            spec["stop"] >= spec["start"],
            f"the epsilon grid's stop ({spec['stop']}) is below its start ({spec['start']})",
        )
        return check_grid(np.linspace(float(spec["start"]), float(spec["stop"]), num=spec["num"]))
    return check_grid(spec)


def _clipped(x: torch.Tensor, clip: bool) -> torch.Tensor:
    return x.clamp(0.0, 1.0) if clip else x


def _per_sample(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Labels shaped to broadcast over one image each."""
    return y.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))


def linear_worst_case(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, eps: float, clip: bool = False
) -> torch.Tensor:
    """x - eps y sign(w): the exact l-inf worst case of a linear scorer w.x + b, labels -1/+1.

    With ``clip`` it is still exact within the valid images: each pixel goes to the end of
    [x - eps, x + eps] n [0, 1] that lowers the margin.
    """
    eps = check_epsilon(eps)
    direction = torch.sign(w).to(x.dtype).view(x.shape[1:])
    return _clipped(x - eps * _per_sample(y, x) * direction, clip)


def linear_weights(model) -> torch.Tensor:
    """The weight vector of a binary linear model (attribute ``w``); one line for anything else."""
    w = getattr(model, "w", None)
    require(
        isinstance(w, torch.Tensor) and w.dim() == 1,
        f"the exact linear attack needs a binary linear model with a weight vector w (e.g. LinearHinge), "
        f"got {type(model).__name__}; use attack fgsm or pgd for other models",
    )
    return w


def attack_loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed over the batch, so each image's gradient is its own loss's gradient."""
    if scores.dim() == 1:
        return -(y.to(scores.dtype) * scores).sum()  # margin loss: its gradient never vanishes
    return F.cross_entropy(scores, y, reduction="sum")


def input_gradient(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(attack_loss(model(x), y), x)
    return grad


def fgsm(model, x: torch.Tensor, y: torch.Tensor, eps: float, clip: bool = False) -> torch.Tensor:
    """One signed-gradient step of size eps (Goodfellow et al.); exact on a linear binary model."""
    eps = check_epsilon(eps)
    return _clipped(x + eps * input_gradient(model, x, y).sign(), clip).detach()


def pgd(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 20,
    step_size: float | None = None,
    clip: bool = False,
    random_start: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """Projected signed-gradient ascent in the l-inf ball (Madry et al.); step size 2.5 eps / steps by default."""
    eps = check_epsilon(eps)
    require(isinstance(steps, int) and steps >= 1, f"pgd steps must be an integer >= 1, got {steps}")
    step = 2.5 * eps / steps if step_size is None else float(step_size)
    require(step >= 0, f"pgd step_size must be >= 0, got {step_size}")
    x_adv = x.detach().clone()
    if random_start:
        generator = torch.Generator(device=x.device).manual_seed(seed)
        x_adv = _clipped(
            x_adv + (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * eps, clip
        )
    for _ in range(steps):
        x_adv = x_adv + step * input_gradient(model, x_adv, y).sign()
        x_adv = _clipped(torch.minimum(torch.maximum(x_adv, x - eps), x + eps), clip)
    return x_adv.detach()


@dataclass(frozen=True)
class Attack:
    """A named attack with its options: ``attack(model, x, y, eps)`` -> attacked images."""

    name: str  # exact (linear models only), fgsm or pgd
    clip: bool = False
    steps: int = 20  # pgd only
    step_size: float | None = None  # pgd only; None: 2.5 eps / steps
    random_start: bool = False  # pgd only

    def __post_init__(self):
        require(self.name in ATTACKS, f"unknown attack '{self.name}'; choose one of {', '.join(ATTACKS)}")
        if self.name == "pgd":
            require(
                isinstance(self.steps, int) and self.steps >= 1, f"pgd steps must be an integer >= 1, got {self.steps}"
            )

    @property
    def label(self) -> str:
        return f"{self.name}, {'clipped to [0, 1]' if self.clip else 'not clipped'}"

    def check(self, model) -> None:
        """What can be checked before any work (the exact attack needs a linear model)."""
        if self.name == "exact":
            linear_weights(model)

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        if self.name == "exact":
            return linear_worst_case(x, y, linear_weights(model).detach(), eps, self.clip)
        if self.name == "fgsm":
            return fgsm(model, x, y, eps, self.clip)
        return pgd(model, x, y, eps, self.steps, self.step_size, self.clip, self.random_start)


NO_ATTACK: AttackFn = lambda model, x, y, eps: x  # noqa: E731  (clean accuracy through the same loop)


def correct(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if scores.dim() == 1:
        return torch.sign(scores) == y.to(scores.dtype)  # sign 0 is wrong, as tf.sign in the blog
    return scores.argmax(dim=1) == y


def _device(model) -> torch.device:
    first = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    return first.device if first is not None else torch.device("cpu")


def check_labels(model, images: torch.Tensor, labels: torch.Tensor) -> None:
    """One forward pass on one image tells binary from multi-class; labels must fit the kind."""
    require(len(images) > 0, "no images to attack; check the data split and subset sizes")
    require(
        labels.dim() == 1 and len(labels) == len(images),
        f"need one label per image: {len(labels)} labels for {len(images)} images",
    )
    with torch.no_grad():
        scores = model(images[:1].to(_device(model)))
    require(
        scores.dim() in (1, 2), f"the model must return scores (N,) or logits (N, K), got shape {tuple(scores.shape)}"
    )
    if scores.dim() == 1:
        require(
            bool(((labels == 1) | (labels == -1)).all()), "a binary model (scores of shape (N,)) needs labels -1/+1"
        )
    else:
        require(
            bool(((labels >= 0) & (labels < scores.shape[1])).all()),
            f"labels must be classes 0..{scores.shape[1] - 1} of the model",
        )


def attacked(model, images: torch.Tensor, labels: torch.Tensor, eps: float, attack: AttackFn, batch_size: int = 1000):
    """(attacked images, their scores) for every image, in batches; on the CPU."""
    device, adv, scores = _device(model), [], []
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size].to(device), labels[start : start + batch_size].to(device)
        x_adv = attack(model, x, y, eps)
        with torch.no_grad():
            scores.append(model(x_adv).cpu())
        adv.append(x_adv.cpu())
    return torch.cat(adv), torch.cat(scores)


def accuracy_under_attack(
    model,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilons: Sequence[float],
    attack: AttackFn,
    batch_size: int = 1000,
) -> np.ndarray:
    """Accuracy of ``model`` on the attacked images, one value per epsilon of the grid."""
    grid = check_grid(epsilons)
    require(
        isinstance(batch_size, int) and batch_size >= 1, f"attack batch_size must be an integer >= 1, got {batch_size}"
    )
    if hasattr(attack, "check"):
        attack.check(model)
    if isinstance(model, nn.Module):
        model.eval()
    check_labels(model, images, labels)
    return np.array(
        [
            float(correct(attacked(model, images, labels, eps, attack, batch_size)[1], labels).float().mean())
            for eps in grid
        ]
    )


def clean_accuracy(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    return float(accuracy_under_attack(model, images, labels, [0.0], NO_ATTACK, batch_size)[0])


def crossing(epsilons: np.ndarray, accuracy: np.ndarray, level: float = 0.5) -> dict:
    """Where accuracy first falls below ``level``: the first grid epsilon, and the linearly
    interpolated epsilon between it and the grid point before (None for both if it never does)."""
    below = np.flatnonzero(np.asarray(accuracy) < level)
    if not len(below):
        return {"first_grid_eps": None, "interpolated_eps": None}
    i = int(below[0])
    if i == 0:
        return {"first_grid_eps": float(epsilons[0]), "interpolated_eps": float(epsilons[0])}
    e0, e1, a0, a1 = epsilons[i - 1], epsilons[i], accuracy[i - 1], accuracy[i]
    return {"first_grid_eps": float(e1), "interpolated_eps": float(e0 + (a0 - level) * (e1 - e0) / (a0 - a1))}
