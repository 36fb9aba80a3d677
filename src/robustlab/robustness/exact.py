"""Exact l-inf distance to the decision boundary of a binary linear scorer f(x) = w.x + b (labels -1/+1).

Without clipping, the worst-case margin over the ball of radius eps is y f(x) - eps ||w||_1 (see
models.linear_hinge), so the distance is y f(x) / ||w||_1. With clipping to [0, 1] each pixel i can
move against the margin by at most its room r_i (x_i when the worst direction -y sign(w_i) lowers
it, 1 - x_i when it raises it), so the worst-case margin is

    m(eps) = y f(x) - sum_i |w_i| min(eps, r_i),

convex, decreasing and piecewise linear with breakpoints at the r_i: sorting them gives m at every
breakpoint, and the root lies on the first segment where m drops to <= 0 (a score of exactly 0 is
wrong, as in the blog). A point whose margin stays positive at every valid image has distance inf;
a misclassified one, 0.
"""

from __future__ import annotations

import torch


def linear_exact_distance(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor | float, clip: bool = False
) -> torch.Tensor:
    """Smallest eps at which the exact worst case (x - eps y sign(w), clipped or not) is misclassified."""
    x, w = x.flatten(1).to(torch.float64), w.detach().flatten().to(torch.float64)
    y = y.to(torch.float64)
    margin = y * (x @ w + float(b))
    a = w.abs()
    if not clip:
        distance = margin / a.sum()
    else:
        lowers = (-y[:, None] * torch.sign(w)[None, :]) < 0  # moving this pixel down lowers the margin
        room = torch.where(lowers, x, 1.0 - x).clamp(min=0.0)
        room, order = room.sort(dim=1)
        coef = a[order]
        used = torch.cumsum(coef * room, dim=1)  # what the pixels whose room is spent take off the margin
        slope_after = a.sum() - torch.cumsum(coef, dim=1)  # d m / d eps beyond each breakpoint
        at_break = margin[:, None] - used - room * slope_after  # m at each breakpoint
        hit = at_break <= 0
        j = torch.where(hit.any(1), hit.float().argmax(1), torch.full_like(margin, room.shape[1], dtype=torch.int64))
        prev_used = torch.where(j > 0, used.gather(1, (j - 1).clamp(min=0)[:, None])[:, 0], torch.zeros_like(margin))
        prev_slope = torch.where(
            j > 0, slope_after.gather(1, (j - 1).clamp(min=0)[:, None])[:, 0], a.sum().expand_as(margin)
        )
        distance = torch.where(hit.any(1), (margin - prev_used) / prev_slope, torch.full_like(margin, float("inf")))
    return torch.where(margin <= 0, torch.zeros_like(margin), distance)
