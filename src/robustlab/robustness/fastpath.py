"""The fast inference path shared by RPR and the attacks, each part a config value:

* ``channels_last``: the model runs on a channels-last copy of itself (2-3x faster convolutions on
  CPU). Results are identical.
* ``compile``: ``torch.compile`` of that copy. Results are identical (the tests compare every
  per-datapoint column). If compiling fails (no C compiler, an unsupported platform), one warning
  is logged and the copy runs eagerly.
* ``autocast``: ``null``, ``bf16`` or ``fp16``. The forward pass runs under ``torch.autocast`` and
  the scores come back as float32. Reduced precision changes the scores slightly, so it can flip
  the argmax of points near a decision boundary. The results then differ from float32 within a
  tolerance, not exactly (see conf/rpr/default.yaml). ``bf16`` is meant for GPUs but also works on
  CPU; ``fp16`` is for CUDA.
* ``batch_size: auto``: CPU_BATCH_SIZE on CPU (the measured sweet spot). On CUDA it is the largest
  power of two, at most AUTO_MAX_BATCH, whose forward pass fits in AUTO_MEMORY_SHARE of the free
  memory.

``FastForward`` is an ``nn.Module``, so gradients pass through it (the attacks) and so does
``inference_mode`` (RPR). It wraps a copy of the model, and the caller's model is left as it was.
"""

from __future__ import annotations

import copy
import logging
import math

import torch
from torch import nn

from robustlab.errors import require

log = logging.getLogger(__name__)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CPU_BATCH_SIZE = 128  # measured on 2 CPU cores (benchmarks/rpr_throughput.py); larger batches gain nothing there
AUTO_MAX_BATCH = 16384  # enough to keep a GPU busy with this project's small CNNs; more only delays progress updates
AUTO_MEMORY_SHARE = 0.25  # RPR also holds the perturbed copies and the perturbation's temporaries
PROBE_BATCH = 64


def check_options(batch_size=128, compile=False, autocast=None, prefix: str = "rpr") -> None:
    """Fail in one line on a bad fast-path value before any work. ``prefix`` names the config group."""
    require(
        batch_size == "auto" or (isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1),
        f"{prefix}.batch_size must be a positive integer or auto, got {batch_size}",
    )
    require(isinstance(compile, bool), f"{prefix}.compile must be true or false, got {compile}")
    require(
        autocast is None or autocast in AUTOCAST_DTYPES,
        f"{prefix}.autocast must be null, {' or '.join(AUTOCAST_DTYPES)}, got {autocast}",
    )


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


class FastForward(nn.Module):
    """``model``'s forward pass with the chosen fast-path options. It returns float32 scores under autocast."""

    def __init__(
        self, model: nn.Module, channels_last: bool = False, compile: bool = False, autocast: str | None = None
    ):
        super().__init__()
        check_options(compile=compile, autocast=autocast)
        self.model = copy.deepcopy(model).eval()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.autocast = AUTOCAST_DTYPES.get(autocast)
        # A compiled *function*, not a module attribute. The compiled module would sit in the module
        # tree a second time and show up in state_dict.
        self.compiled = self._compile() if compile else None

    def _compile(self):
        try:
            return torch.compile(self.model.forward)
        except Exception as error:  # noqa: BLE001 (any failure: fall back, the results are the same)
            self._fall_back(error)
            return None

    def _fall_back(self, error: Exception) -> None:
        log.warning(
            "torch.compile failed (%s: %s); running the model eagerly", type(error).__name__, _first_line(error)
        )
        self.compiled = None

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is None:
            return self.model(x)
        try:
            return self.compiled(x)  # compiles on the first call (and again for new shapes)
        except Exception as error:  # noqa: BLE001
            scores = self.model(x)  # a genuine error of the model itself is raised here, without the warning
            self._fall_back(error)
            return scores

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        if self.autocast is None:
            return self._forward(x)
        with torch.autocast(x.device.type, dtype=self.autocast):
            scores = self._forward(x)
        return scores.float()


def fast_forward(
    model: nn.Module, channels_last: bool = False, compile: bool = False, autocast: str | None = None
) -> nn.Module:
    """``model`` itself in eval mode when every option is off (the plain path), else a FastForward copy."""
    if not (channels_last or compile or autocast):
        return model.eval()
    return FastForward(model, channels_last, compile, autocast)


def resolve_batch_size(batch_size, fn, sample: torch.Tensor) -> int:
    """An int stays as it is. ``auto`` means CPU_BATCH_SIZE off CUDA. On CUDA it comes from a probe
    forward pass of ``fn`` on copies of ``sample[:1]`` and the free device memory."""
    if batch_size != "auto":
        return batch_size
    if sample.device.type != "cuda":
        return CPU_BATCH_SIZE
    per_image = _cuda_bytes_per_image(fn, sample)
    free, _ = torch.cuda.mem_get_info(sample.device)
    fits = max(1, int(free * AUTO_MEMORY_SHARE // per_image))
    return max(CPU_BATCH_SIZE, min(AUTO_MAX_BATCH, 2 ** int(math.log2(fits))))


def _cuda_bytes_per_image(fn, sample: torch.Tensor) -> float:
    probe = sample[:1].expand(PROBE_BATCH, *sample.shape[1:]).contiguous()
    torch.cuda.synchronize(sample.device)
    torch.cuda.reset_peak_memory_stats(sample.device)
    before = torch.cuda.memory_allocated(sample.device)
    with torch.inference_mode():
        fn(probe)
    torch.cuda.synchronize(sample.device)
    peak = torch.cuda.max_memory_allocated(sample.device) - before
    return (max(peak, 0) + probe.numel() * probe.element_size()) / PROBE_BATCH
