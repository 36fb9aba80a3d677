"""RPR in shards: a run with ``rpr.shard=i/n`` measures positions i, i+n, i+2n, ... of its sorted
point list; ``merge_results`` joins the shards' results into the result of one run.

A point's perturbations derive only from (seed, dataset index, retry), so the merged shards equal an
unsharded run point for point, provided every shard measured the same M (checked by its digest).
Reading and writing the shards' run folders (``robustlab-rpr-merge``) is robustlab.pipelines.shard_merge.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import torch

from robustlab.errors import require
from robustlab.robustness.rpr import RPRResult

SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(spec) -> tuple[int, int] | None:
    """``"i/n"`` -> (i, n) with 0 <= i < n; None (no sharding) for null."""
    if spec is None:
        return None
    match = SPEC.match(str(spec))
    require(match is not None, f"rpr.shard must look like i/n (e.g. 0/4) or be null, got '{spec}'")
    index, count = int(match[1]), int(match[2])
    require(0 <= index < count, f"rpr.shard={spec}: need 0 <= i < n (shards are numbered 0..n-1)")
    return index, count


def shard_positions(length: int, index: int, count: int) -> torch.Tensor:
    """Positions index, index+count, ... of 0..length-1: disjoint over the shards, covering them all."""
    return torch.arange(index, max(index, length), count)  # empty when index >= length


def merge_results(parts: list[RPRResult]) -> RPRResult:
    """One result from disjoint shares of the points, sorted by dataset index."""
    require(len(parts) > 0, "nothing to merge: no RPR results given")
    steps = sorted({p.max_steps for p in parts})
    require(len(steps) == 1, f"the shards were measured with different MAX_STEPS: {steps}")
    columns = {
        name: np.concatenate([getattr(p, name) for p in parts])
        for name in ("index", "label", "clean_pred", "first_failure", "fail_pred")
    }
    unique, counts = np.unique(columns["index"], return_counts=True)
    require(
        (counts == 1).all(),
        f"the shards overlap: dataset index {unique[counts > 1][:5].tolist()} measured more than once",
    )
    order = np.argsort(columns["index"], kind="stable")
    return RPRResult.from_columns({k: v[order] for k, v in columns.items()}, steps[0])


def model_digest(model: torch.nn.Module) -> str:
    """A hash of the weights: shards of one result must have measured the same M."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
