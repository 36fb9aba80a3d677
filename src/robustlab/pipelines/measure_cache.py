"""What an RPR measurement or an attack curve is, as a cache key (robustlab.runs.cache).

RPR key: the model (class and a hash of its weights), the scheme's config, seed, MAX_STEPS, the
code version and the points (dataset index, label and image bytes of each). Left out: batch_size,
channels_last, compile, min_block, max_block and progress, which by the determinism contract of
robustness.rpr (tested in tests/test_rpr.py and tests/test_fastpath.py) do not change a float32
result, nor the device (tests/test_gpu.py checks CUDA gives the CPU step counts). Under autocast
that contract does not hold (reduced precision can depend on the batch and the device), so then
every one of those options and the device type are part of the key.

Attack key: the model, the attack's options, the eps grid, the points, the fast-path options and the
batch size (channels_last and compile change the float rounding of input gradients; PGD's random start
is seeded per batch), the device type and the code version.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from robustlab.robustness.rpr import RPRResult
from robustlab.robustness.shards import model_digest
from robustlab.runs.cache import ResultCache, key_text, row_ids
from robustlab.runs.identity import code_version

log = logging.getLogger(__name__)

SCHEDULE_OPTIONS = ("batch_size", "channels_last", "compile", "min_block", "max_block")


def measure_options(rpr_cfg) -> dict:
    """The ``rpr`` config's schedule and fast-path options as measure_rpr's keyword arguments: every
    pipeline and robustlab-rpr pass them through here, so none silently drops one (before, two ignored
    rpr.autocast, rpr.compile and rpr.channels_last)."""
    return {name: _plain(rpr_cfg.get(name)) for name in (*SCHEDULE_OPTIONS, "autocast")}


def result_cache(cfg: DictConfig, kind: str) -> ResultCache:
    """The cache of ``kind`` under ``cfg.result_cache`` (null: none)."""
    root = cfg.get("result_cache")
    return ResultCache(root or None, kind)


def _plain(node) -> object:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def model_key(model: torch.nn.Module) -> dict:
    return {"class": f"{type(model).__module__}.{type(model).__qualname__}", "weights": model_digest(model)}


def device_of(model: torch.nn.Module) -> str:
    first = next(iter(model.parameters()), None)
    return "cpu" if first is None else first.device.type


def point_ids(images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> np.ndarray:
    return row_ids(index.cpu().numpy(), labels.cpu().numpy(), images.detach().cpu().float().numpy())


def rpr_key(model, perturbation_cfg, rpr_cfg, seed: int) -> dict:
    key = {
        "what": "rpr",
        "code": code_version(),
        "model": model_key(model),
        "perturbation": _plain(perturbation_cfg),
        "seed": int(seed),
        "max_steps": int(rpr_cfg.max_steps),
        "autocast": rpr_cfg.get("autocast"),
    }
    if key["autocast"] is not None:
        key |= measure_options(rpr_cfg) | {"device": device_of(model)}
    return key


class CachedRPR:
    """One RPR measurement's cache lookup and store; ``hit`` names the entry it came from."""

    def __init__(self, cache: ResultCache, model, split, perturbation_cfg, rpr_cfg, seed: int):
        self.cache, self.hit = cache, None
        if not cache.enabled:
            return
        self.key = rpr_key(model, perturbation_cfg, rpr_cfg, seed)
        self.family = ResultCache.family(self.key)
        self.ids = point_ids(split.images, split.labels, split.index)

    def load(self) -> RPRResult | None:
        if not self.cache.enabled:
            return None
        found = self.cache.load(self.family, self.ids)
        if found is None:
            return None
        arrays, self.hit = found
        log.info("rpr cache hit: %s", self.hit)
        return RPRResult.from_columns(arrays, self.key["max_steps"])

    def store(self, result: RPRResult) -> None:
        if self.cache.enabled:
            columns = {name: np.asarray(values) for name, values in result.columns().items()}
            self.cache.store(self.family, self.ids, columns, self.key | {"points": len(self.ids)})

    @property
    def source(self) -> str:
        """What metrics record: 'cache' (with the entry), 'measured', or 'no cache'."""
        if not self.cache.enabled:
            return "no cache"
        return f"cache {self.hit}" if self.hit else "measured"


def attack_key(model, attack_label: str, attack_options: dict, grid: np.ndarray, fast: dict, batch_size: int) -> dict:
    return {
        "what": "attack",
        "code": code_version(),
        "model": model_key(model),
        "attack": attack_label,
        "options": attack_options,
        "grid": [float(e) for e in grid],
        "fast": fast,
        "batch_size": int(batch_size),
        "device": device_of(model),
    }


def cached_curve(cache: ResultCache, key: dict, points, compute) -> tuple[np.ndarray, str]:
    """The accuracy-under-attack curve for ``key`` from the cache, or ``compute()`` stored there:
    (curve, 'cache <entry>' / 'measured' / 'no cache')."""
    if not cache.enabled:
        return compute(), "no cache"
    family, ids = ResultCache.family(key), point_ids(points.images, points.labels, points.index)
    rows = np.asarray([rows_row(ids)])  # one row: the whole curve is the result of the whole point set
    found = cache.load(family, rows)
    if found is not None:
        arrays, entry = found
        log.info("attack cache hit: %s", entry)
        return arrays["accuracy"][0], f"cache {entry}"
    curve = compute()  # returned as computed (its dtype decides how the curve is written)
    cache.store(family, rows, {"accuracy": curve[None, :]}, key | {"points": len(ids)})
    log.debug("attack cache stored: %s", key_text(key))
    return curve, "measured"


def rows_row(ids: np.ndarray) -> int:
    """One id for a whole point set (an attack curve is not made of independent rows)."""
    return int(row_ids(np.ascontiguousarray(ids, dtype=np.int64)[None, :])[0])
