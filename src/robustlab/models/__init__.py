"""Lightning modules."""

from robustlab.models.classifier import ImageClassifier, load_classifier
from robustlab.models.simple_cnn import SimpleCNN

__all__ = ["ImageClassifier", "SimpleCNN", "load_classifier"]
