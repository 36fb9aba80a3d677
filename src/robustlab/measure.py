"""``robustlab-rpr``: RPR of any image classifier on any folder of images, from the command line.

  robustlab-rpr model=<file.pt | file.ckpt | python:module:factory> data.root=<folder> perturbation=<scheme>

``model``: a TorchScript file (``torch.jit.save``), a Lightning checkpoint of ``model_class``, or
``python:module:factory``, a function returning an ``nn.Module`` (or any callable batch -> scores).
``data.root`` is a torchvision ImageFolder (one sub-folder per class, sorted class names = the model's
output indices). Preprocessing (``preprocess.*``: channels, resize, mean/std) is configuration: the resize
happens when images are read, the normalisation inside the model, so perturbations act on pixels in
[0, 1]. The run folder holds what the project's own runs hold: rpr_M_test.csv, metrics.json,
examples_M_test.npz and the figures of ``robustlab-plot rpr``.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from robustlab.cli import CONF_DIR, unknown_option
from robustlab.errors import RobustlabError, one_line_errors, require

log = logging.getLogger("robustlab")


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def load_model(spec: str, model_class: str):
    """The classifier named by ``model=``; any failure to load is one line."""
    require(bool(spec), "set model=<TorchScript file | Lightning checkpoint | python:module:factory>")
    if spec.startswith("python:"):
        module, _, factory = spec.removeprefix("python:").rpartition(":")
        try:
            model = getattr(importlib.import_module(module), factory)()
        except Exception as error:  # noqa: BLE001  (user code: any failure to load is one line)
            raise RobustlabError(f"model={spec} did not load: {type(error).__name__}: {first_line(error)}") from None
        require(callable(model), f"model={spec}: the factory returned {type(model).__name__}, not a model")
        return model.eval() if isinstance(model, torch.nn.Module) else model
    path = Path(spec)
    require(
        path.is_file(),
        f"model file not found: {path}; give a TorchScript file, a Lightning checkpoint or python:module:factory",
    )
    if path.suffix == ".ckpt":
        from hydra.utils import get_class

        from robustlab.models import load_classifier

        return load_classifier(get_class(model_class), path)
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as error:  # noqa: BLE001  (any file torch cannot load is one line)
        raise RobustlabError(
            f"model file {path} is not a TorchScript model ({first_line(error)}); "
            "export it with torch.jit.script/trace and torch.jit.save"
        ) from None


class Normalised(torch.nn.Module):
    """The model behind its normalisation: RPR perturbs pixels in [0, 1], the model sees (x - mean) / std."""

    def __init__(self, model, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)


def load_images(root: str, preprocess: DictConfig):
    """All images of an ImageFolder as one tensor in [0, 1], their labels and the class names."""
    from torchvision import datasets
    from torchvision.transforms import v2

    folder = Path(root)
    require(folder.is_dir(), f"data.root={root} is not a folder; give an image folder with one sub-folder per class")
    steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if preprocess.channels == 1:
        steps.append(v2.Grayscale(1))
    elif preprocess.channels == 3:
        steps.append(v2.RGB())
    if preprocess.resize:
        steps.append(v2.Resize(list(preprocess.resize), antialias=True))
    try:
        dataset = datasets.ImageFolder(str(folder), transform=v2.Compose(steps))
    except (FileNotFoundError, RuntimeError) as error:
        raise RobustlabError(
            f"data.root={root} holds no images: {first_line(error)}; put each class's images in its own sub-folder"
        ) from None
    try:
        pairs = [dataset[i] for i in range(len(dataset))]
        images = torch.stack([image for image, _ in pairs])
    except RuntimeError as error:
        raise RobustlabError(
            f"images in {root} differ in size ({first_line(error)}); set preprocess.resize=[H,W]"
        ) from None
    labels = torch.tensor([label for _, label in pairs], dtype=torch.int64)
    return images.clamp(0, 1), labels, dataset.classes


def check_classes(fn, images: torch.Tensor, classes: list[str], root: str) -> None:
    """Each class folder needs an output of the model: sub-folder i is class i."""
    from robustlab.robustness.rpr import _scores

    try:
        with torch.inference_mode():
            outputs = _scores(fn, images[:1]).shape[-1]
    except RuntimeError as error:
        raise RobustlabError(
            f"the model rejected images shaped {tuple(images.shape[1:])} from {root}: {first_line(error)}; "
            "set preprocess.resize / preprocess.channels to what the model expects"
        ) from None
    extra = classes[outputs:]
    require(
        not extra,
        f"class folder(s) {extra} in {root} have no output of the model ({outputs} outputs for "
        f"{len(classes)} class folders, sorted by name); remove them or use a model with more outputs",
    )


def measure(cfg: DictConfig, run_dir: Path) -> dict:
    from robustlab import results
    from robustlab.config import build
    from robustlab.data.module import Split
    from robustlab.pipelines.measure_cache import measure_options
    from robustlab.pipelines.rpr_retrain import RPRRetrain
    from robustlab.robustness.rpr import measure_rpr
    from robustlab.robustness.summary import summarise

    perturbation = build(cfg.perturbation)
    model = load_model(str(cfg.model_spec or ""), cfg.model_class)
    images, labels, classes = load_images(cfg.data.root, cfg.preprocess)
    if cfg.preprocess.mean is not None:
        model = Normalised(model, list(cfg.preprocess.mean), list(cfg.preprocess.std))
    check_classes(model, images, classes, cfg.data.root)
    split = Split(images, labels, torch.arange(len(labels)))
    r = cfg.rpr
    result = measure_rpr(
        model,
        images,
        labels,
        perturbation,
        r.max_steps,
        seed=cfg.seed,
        **measure_options(r),
        progress=r.progress,
        desc="RPR",
    )
    results.save_rpr(run_dir / "rpr_M_test.csv", result)
    # The project's own example writer (Figures 1 and 2); it needs only the seed, the scheme and the run folder.
    RPRRetrain.save_examples(SimpleNamespace(cfg=cfg, perturbation=perturbation, run_dir=run_dir), result, split)
    metrics = {
        "pipeline": "rpr_measure",
        "profile": "custom",
        "seed": cfg.seed,
        "data": {
            "name": Path(cfg.data.root).name,
            "root": str(Path(cfg.data.root).resolve()),
            "train_images": 0,
            "test_images": len(labels),
            "classes": classes,
        },
        "model": str(cfg.model_spec),
        "perturbation": perturbation.describe(),
        "scheme": perturbation.name,
        "max_steps": r.max_steps,
        "M": {"test_accuracy": float(result.correct.mean()), "test": summarise(result, len(classes))},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    results.write_json(run_dir / results.METRICS, metrics)
    if cfg.figures:
        from robustlab.plotting.rpr import plot_run

        plot_run(run_dir, run_dir / "figures")
    print(
        f"RPR of {cfg.model_spec} on {len(labels)} images of {cfg.data.root} under {perturbation.describe()}, "
        f"MAX_STEPS={r.max_steps}: clean accuracy {metrics['M']['test_accuracy']:.4f}, "
        f"robust ratio {metrics['M']['test']['robust_ratio']:.4f} -> {run_dir}"
    )
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="measure")
def _main(cfg: DictConfig) -> None:
    with one_line_errors():
        measure(cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    # conf/model is a config group (the training pipelines' models), so Hydra would read model=<file> as
    # picking one of its options: the value goes to the plain key model_spec instead.
    sys.argv[1:] = [f"model_spec={a.removeprefix('model=')}" if a.startswith("model=") else a for a in sys.argv[1:]]
    with one_line_errors():
        problem = unknown_option(sys.argv[1:])
        require(problem is None, str(problem))
    _main()


if __name__ == "__main__":
    main()
