"""Where the YAML config tree is: the one function every reader of conf/ goes through.

The tree is the top-level conf/ of the checkout (where users see and edit it). The package reaches it
through src/robustlab/conf, a symlink to ../../conf, which the wheel ships as package data (a real
folder there: building the wheel copies the files). So ``files("robustlab") / "conf"`` is the tree in
a checkout, in an editable install and in an installed wheel alike.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def conf_dir() -> str:
    """The folder holding config.yaml and the config groups (an absolute path, as Hydra wants)."""
    return str(Path(str(files("robustlab") / "conf")).resolve())
