"""skgradunc: gradient-based uncertainty for neural-network classifiers, the sklearn way."""

from . import datasets
from .callbacks import TrainingDivergedError
from .classifier import CNNClassifier
from .nets import PaperCNN
from .transformer import GradientMetricTransformer

__version__ = "0.1.0"

__all__ = ["CNNClassifier", "GradientMetricTransformer", "PaperCNN", "TrainingDivergedError", "datasets", "__version__"]
