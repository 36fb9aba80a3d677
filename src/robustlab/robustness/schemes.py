"""Every perturbation scheme by name: the five noise schemes (robustlab.robustness.perturbations) and
the MNIST-C / ImageNet-C corruptions (robustlab.robustness.corruptions, built on the same
Perturbation); ``make_perturbation`` builds one (the Hydra configs in ``conf/perturbation`` call it
as ``robustlab.robustness.make_perturbation``)."""

from __future__ import annotations

from robustlab.errors import require
from robustlab.robustness.corruptions import CORRUPTIONS
from robustlab.robustness.perturbations import SCHEMES, Perturbation

ALL_SCHEMES = SCHEMES | {cls.name: cls for cls in CORRUPTIONS}


def make_perturbation(name: str, **params) -> Perturbation:
    """Build a scheme by name; the Hydra configs in ``conf/perturbation`` call this."""
    require(name in ALL_SCHEMES, f"unknown perturbation scheme '{name}'; choose one of {', '.join(ALL_SCHEMES)}")
    try:
        return ALL_SCHEMES[name](**params)
    except TypeError as error:
        raise_unknown_param(name, params, error)


def raise_unknown_param(name: str, params: dict, error: TypeError) -> None:
    allowed = [f for f in ALL_SCHEMES[name].__dataclass_fields__]
    unknown = sorted(set(params) - set(allowed))
    require(not unknown, f"perturbation '{name}' has no parameter(s) {unknown}; it takes {allowed}")
    raise error
