"""The configs' Python side: where the YAML tree lives (``location.conf_dir``), the schema of each config
group (``schema``, registered in Hydra's ConfigStore when imported: robustlab.cli does), one validator per
group (``validate``) and the checks the command line runs before any work (``precheck``). Nothing here
imports torch or Lightning."""

from robustlab.configs.location import conf_dir

__all__ = ["conf_dir"]
