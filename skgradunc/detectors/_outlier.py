"""What the detectors fitted on in-distribution data alone share: scikit-learn's outlier
detector convention (``score_samples`` higher = more typical, ``decision_function`` =
``score_samples - offset_``, ``predict`` +1 / -1) and a threshold fitted on the training
scores at a chosen in-distribution true positive rate."""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["InDistributionDetector"]


class InDistributionDetector(OutlierMixin, BaseEstimator):
    """Base of the in-distribution-only scorers: a subclass implements ``_fit(X, y)``
    (returning the training samples' scores) and ``_scores(X)``."""

    def _check_tpr(self):
        tpr = self.tpr
        if not (isinstance(tpr, numbers.Real) and not isinstance(tpr, bool) and 0 < tpr < 1):
            raise ValueError(f"tpr must be a fraction in (0, 1), got {tpr!r}")

    def _fit_threshold(self, training_scores):
        """``offset_``: the score above which a fraction ``tpr`` of the training samples
        lie, so that ``predict`` keeps that fraction of in-distribution inputs."""
        self.offset_ = float(np.quantile(training_scores, 1 - self.tpr, method="lower"))

    def score_samples(self, X):
        """Higher means more typical of the training data (scikit-learn's convention).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features, with the columns seen in ``fit``.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The detector's score of each sample.
        """
        check_is_fitted(self, "offset_")
        return self._scores(X)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for the samples ``predict`` calls
        outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features, with the columns seen in ``fit``.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            Positive or zero: in distribution at the fitted rate; negative: an outlier.
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for in-distribution samples, -1 for outliers, by the threshold fitted at
        ``tpr`` on the training scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features, with the columns seen in ``fit``.

        Returns
        -------
        labels : ndarray of int, shape (n_samples,)
            +1 or -1.
        """
        return np.where(self.decision_function(X) >= 0, 1, -1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
