"""Quality of generated images without any download: Fréchet distance and class histogram in the
feature space of the project's own trained CNN (not the Inception-based FID)."""

from robustlab.evaluation.frechet import class_histogram, features, frechet_distance, load_judge, quality_report

__all__ = ["class_histogram", "features", "frechet_distance", "load_judge", "quality_report"]
