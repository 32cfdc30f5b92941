"""skgradunc: gradient-based uncertainty for neural-network classifiers, the sklearn way."""

from . import conformal, datasets, detectors, layer_rules, metrics
from .activation_transformer import ActivationGradientTransformer
from .baselines import SingleMetricClassifier
from .callbacks import TrainingDivergedError
from .classifier import CNNClassifier
from .meta import MetaClassifier
from .nets import PaperCNN
from .targets import append_out_of_distribution, correctness_target
from .transformer import GradientMetricTransformer
from .uqgan import OneVsAllClassifier, UQGANClassifier

__version__ = "0.1.0"

__all__ = [
    "ActivationGradientTransformer",
    "CNNClassifier", "GradientMetricTransformer", "MetaClassifier", "OneVsAllClassifier",
    "PaperCNN",
    "SingleMetricClassifier", "TrainingDivergedError", "UQGANClassifier",
    "append_out_of_distribution",
    "conformal", "correctness_target", "datasets", "detectors", "layer_rules", "metrics",
    "__version__",
]
