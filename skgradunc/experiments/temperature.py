"""Temperature scaling of a run's cached logits with scikit-learn's own
``CalibratedClassifierCV(method="temperature")``, fitted on the validation images (issue
28): the ECE of the softmax maximum before and after."""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import KFold

__all__ = ["temperature_scaling"]


class _CachedLogits(ClassifierMixin, BaseEstimator):
    """A classifier whose input rows are its own logits: scikit-learn calibrates cached
    outputs through it without the network."""

    def __init__(self, n_classes=2):
        self.n_classes = n_classes

    def fit(self, X=None, y=None):
        self.classes_ = np.arange(self.n_classes)
        return self

    def decision_function(self, X):
        return np.asarray(X, dtype=np.float64)

    def predict(self, X):
        return self.classes_[np.asarray(X).argmax(axis=1)]


def temperature_scaling(arrays, y_validation):
    """(probabilities of a set's name, temperature): the softmax of ``{set}__logits`` over
    the temperature fitted on ``validation__logits`` and the validation images' classes
    ``y_validation`` (0 .. K-1) by scikit-learn."""
    logits, y_validation = arrays["validation__logits"], np.asarray(y_validation)
    counts = np.bincount(y_validation, minlength=logits.shape[1])
    if len(counts) != logits.shape[1] or counts.min() < 2:
        raise ValueError(f"temperature scaling needs at least 2 validation images of each of "
                         f"the {logits.shape[1]} classes; their counts are {counts.tolist()}")
    network = FrozenEstimator(_CachedLogits(logits.shape[1]).fit())
    # the frozen network predicts the same in every fold: two folds (scikit-learn's default
    # five would refuse a class with fewer than five validation images)
    calibrated = CalibratedClassifierCV(network, method="temperature", cv=KFold(2))
    calibrated.fit(logits, y_validation)
    temperature = 1.0 / float(calibrated.calibrated_classifiers_[0].calibrators[0].beta_)
    return (lambda s: calibrated.predict_proba(arrays[f"{s}__logits"])), temperature
