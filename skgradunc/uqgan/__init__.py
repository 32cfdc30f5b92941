"""UQGAN (Oberdiek, Fink & Rottmann 2022) and its one-vs-all classifier as scikit-learn
estimators: :class:`OneVsAllClassifier` (the baseline, and UQGAN's classifier)."""

from .one_vs_all import OneVsAllClassifier

__all__ = ["OneVsAllClassifier"]
