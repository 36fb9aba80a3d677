"""``model=python:factory:build``: a function that builds a torchvision architecture and loads its weights.

Run as a script it saves a state dict, then measures the model the factory builds from it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).parent))
from common import write_image_folder


def build() -> torch.nn.Module:
    """What robustlab-rpr calls: the architecture, then the state dict named by ROBUSTLAB_EXAMPLE_WEIGHTS."""
    model = torchvision.models.mobilenet_v3_small(num_classes=2)
    model.load_state_dict(torch.load(os.environ["ROBUSTLAB_EXAMPLE_WEIGHTS"], map_location="cpu"))
    return model.eval()


def main(work: Path) -> None:
    images = write_image_folder(work)
    torch.manual_seed(0)
    weights = work / "mobilenet_v3_small.pth"
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=2).state_dict(), weights)
    command = [
        sys.executable,
        "-m",
        "robustlab.measure",
        "model=python:factory:build",
        f"data.root={images}",
        "perturbation=rotation",
        "perturbation.severity=2",
        "rpr.max_steps=10",
        "preprocess.resize=[32,32]",
        f"hydra.run.dir={work / 'run'}",
    ]
    env = os.environ | {
        "ROBUSTLAB_EXAMPLE_WEIGHTS": str(weights),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    }
    print(" ".join(command[1:]))
    subprocess.run(command, check=True, env=env)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
