"""Building objects from config nodes, with the one-line errors of robustlab kept one line."""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate as _instantiate
from omegaconf import OmegaConf

from robustlab.errors import RobustlabError


def build(node, **kwargs):
    """``hydra.utils.instantiate`` that re-raises a RobustlabError from the target as itself.

    Hydra wraps every exception of a ``_target_`` in a multi-line InstantiationException; a bad
    config value should read as the target's own one-line message.
    """
    try:
        return _instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, RobustlabError):
            raise cause from None
        message = str(cause or error).strip().splitlines()
        raise RobustlabError(
            f"bad config for {node.get('_target_', '?')}: {message[0] if message else error}"
        ) from None


def grid_spec(spec) -> dict | list:
    """A grid's config node (``{start, stop, num}`` or a list) as plain Python, for linspace_grid."""
    return OmegaConf.to_container(spec) if OmegaConf.is_config(spec) else spec
