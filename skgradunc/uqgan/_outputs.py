"""What a one-vs-all classifier answers (UQGAN's reading of its K sigmoid outputs), shared
by :class:`OneVsAllClassifier` and :class:`UQGANClassifier`."""

import numpy as np

from ._losses import class_probabilities, normalised_entropy

__all__ = ["OneVsAllOutputMixin", "UNCERTAINTIES"]

UNCERTAINTIES = ("epistemic", "aleatoric")


class OneVsAllOutputMixin:
    """``predict_proba``, ``predict``, ``predict_uncertainty`` and ``score_samples`` from
    ``_one_vs_all_probabilities(X)`` (n, K sigmoid outputs) and ``class_prior_``."""

    def _read(self, X):
        return class_probabilities(self._one_vs_all_probabilities(X), self.class_prior_)

    def predict_proba(self, X):
        """P(class | x), shape (n_samples, n_classes): each one-vs-all output's odds
        divided by K - 1, weighted by the class prior and normalised (UQGAN, Sec. 3)."""
        return self._read(X)[0]

    def predict(self, X):
        """The most probable class of every sample."""
        best = self.predict_proba(X).argmax(axis=1)   # checks that it is fitted first
        return self.classes_[best]

    def predict_uncertainty(self, X):
        """UQGAN's two uncertainties, shape (n_samples, 2), both in [0, 1]:
        column 0 epistemic = 1 - P(in distribution | x) (out of distribution when high),
        column 1 aleatoric = entropy of P(class | x) / log K (a likely wrong prediction
        when high)."""
        probabilities, in_distribution = self._read(X)
        return np.column_stack([1.0 - in_distribution, normalised_entropy(probabilities)])

    def score_samples(self, X):
        """P(in distribution | x): higher means more typical of the training data (as
        scikit-learn's outlier detectors' ``score_samples``)."""
        return self._read(X)[1]
