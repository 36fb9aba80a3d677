"""A torchvision model exported to TorchScript, measured on an image folder from the command line."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).parent))
from common import write_image_folder


def main(work: Path) -> None:
    images = write_image_folder(work)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2).eval()  # untrained: the example shows the plumbing
    torch.jit.save(torch.jit.script(model), str(work / "resnet18.pt"))
    command = [
        sys.executable,
        "-m",
        "robustlab.measure",
        f"model={work / 'resnet18.pt'}",
        "data=imagefolder",
        f"data.root={images}",
        "perturbation=gaussian",
        "perturbation.sigma=0.1",
        "rpr.max_steps=10",
        "preprocess.resize=[32,32]",
        "preprocess.mean=[0.485,0.456,0.406]",
        "preprocess.std=[0.229,0.224,0.225]",
        f"hydra.run.dir={work / 'run'}",
    ]
    print(" ".join(command[1:]))
    subprocess.run(command, check=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
