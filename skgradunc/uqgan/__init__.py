"""UQGAN (Oberdiek, Fink & Rottmann 2022) and its one-vs-all classifier as scikit-learn
estimators: :class:`OneVsAllClassifier` (the baseline) and :class:`UQGANClassifier`."""

from .one_vs_all import OneVsAllClassifier
from .uqgan import UQGANClassifier

__all__ = ["OneVsAllClassifier", "UQGANClassifier"]
