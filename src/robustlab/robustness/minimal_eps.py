"""Per-point bounds on the minimal adversarial l-inf radius of a classifier, by bisection.

Upper bound: the smallest radius at which PGD (robustness.attacks' signed-gradient steps, one radius
per point) finds a misclassified image; an attack found proves the minimal radius is at most that.
Lower bound: the largest radius IBP certifies (robustness.ibp); boxes are nested, so certification
is monotone in the radius and bisection finds it. Each bisection keeps the invariant (lo: certified or
no attack found, hi: attack found or not certified), so after n halvings the bound is within
eps_max / 2^n of the radius where the method's answer changes. inf: PGD found nothing up to eps_max;
a clean-misclassified point has 0 for both.
"""

from __future__ import annotations

import torch

from robustlab.robustness import ibp
from robustlab.robustness.attacks import input_gradient


def pgd_per_point(
    model, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, steps: int, clip: bool = True
) -> torch.Tensor:
    """PGD in the l-inf ball of radius eps[i] around each x[i]; step 2.5 eps / steps (Madry et al.)."""
    eps = eps.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    step, x_adv = 2.5 * eps / steps, x.detach().clone()
    for _ in range(steps):
        x_adv = x_adv + step * input_gradient(model, x_adv, y).sign()
        x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps)
        x_adv = x_adv.clamp(0.0, 1.0) if clip else x_adv
    return x_adv.detach()


def _fooled(model, x, y, eps, steps, clip) -> torch.Tensor:
    with torch.no_grad():
        return model(pgd_per_point(model, x, y, eps, steps, clip)).argmax(1) != y


def pgd_upper_bound(model, x, y, eps_max: float, iterations: int, steps: int, clip: bool = True) -> torch.Tensor:
    """Smallest radius (to eps_max / 2^iterations) where PGD succeeded; inf where it fails at eps_max."""
    with torch.no_grad():
        wrong = model(x).argmax(1) != y
    lo, hi = torch.zeros(len(x)), torch.full((len(x),), float(eps_max))
    found = _fooled(model, x, y, hi, steps, clip) | wrong
    for _ in range(iterations):
        mid = (lo + hi) / 2
        ok = _fooled(model, x, y, mid, steps, clip)
        hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
    hi = torch.where(found, hi, torch.full_like(hi, float("inf")))
    return torch.where(wrong, torch.zeros_like(hi), hi)


def ibp_lower_bound(model, x, y, eps_max: float, iterations: int, clip: bool = True) -> torch.Tensor:
    """Largest radius (to eps_max / 2^iterations) that IBP certifies; 0 for misclassified points."""
    lo, hi = torch.zeros(len(x)), torch.full((len(x),), float(eps_max))
    at_max = ibp.certified(model, x, y, hi, clip)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        ok = ibp.certified(model, x, y, mid, clip)
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    lo = torch.where(at_max, torch.full_like(lo, float(eps_max)), lo)
    return torch.where(ibp.certified(model, x, y, torch.zeros(len(x)), clip), lo, torch.zeros_like(lo))
