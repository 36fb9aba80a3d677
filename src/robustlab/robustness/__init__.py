"""Perturbation schemes and the RPR measure."""

from robustlab.robustness.perturbations import SCHEMES, Perturbation
from robustlab.robustness.rpr import RPRResult, measure_rpr, perturb_at
from robustlab.robustness.schemes import make_perturbation

__all__ = ["SCHEMES", "Perturbation", "RPRResult", "make_perturbation", "measure_rpr", "perturb_at"]
