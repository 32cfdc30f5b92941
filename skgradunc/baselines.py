"""Single-feature threshold meta classifiers: the paper's Table 1 baselines."""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import roc_auc_score
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .meta import BinaryMetaMixin, check_binary_target, logistic_regression

__all__ = ["SingleMetricClassifier"]


class SingleMetricClassifier(BinaryMetaMixin, ClassifierMixin, BaseEstimator):
    """Meta classification by thresholding one feature (e.g. the softmax entropy).

    ``fit`` learns from the training data which direction means "correct": the
    direction in which the feature's AUROC for the target is at least 0.5 (low
    entropy, high max-probability, small gradient norm...). ``signed_feature`` is
    the feature times that direction; ``decision_function`` and ``predict_proba``
    are a one-feature logistic calibration of it with a non-negative slope, so
    every threshold of them is a threshold of the feature, and the package's
    scorers (AUROC, AUPR-In/-Out, FPR@95 %TPR) measure the paper's threshold
    classifier.

    Parameters
    ----------
    feature : str or int, default="softmax__entropy"
        Column name (needs a DataFrame, e.g. from ``set_output(transform="pandas")``
        on the pipeline) or column index.
    pos_label : int, str or None, default=None
        The target value meaning "correct"; None: the larger of two numbers (1).
        Labels that are not numbers must name it.

    Attributes
    ----------
    column_ : int
        Index of the feature.
    direction_ : {1, -1}
        +1 when larger values mean "more likely correct".
    classes_ : ndarray
        The two target values, ``[negative, positive]``; ``classes_[1]`` means
        "correct".

    Examples
    --------
    >>> import pandas as pd
    >>> from skgradunc import SingleMetricClassifier
    >>> F = pd.DataFrame({"softmax__entropy": [0.9, 0.8, 0.1, 0.2], "x": [0, 1, 0, 1]})
    >>> base = SingleMetricClassifier("softmax__entropy").fit(F, [0, 0, 1, 1])
    >>> base.direction_, base.predict(F).tolist()
    (-1, [0, 0, 1, 1])
    """

    def __init__(self, feature="softmax__entropy", *, pos_label=None):
        self.feature = feature
        self.pos_label = pos_label

    def _column(self):
        if isinstance(self.feature, str):
            names = getattr(self, "feature_names_in_", None)
            if names is None:
                raise ValueError(
                    f"feature {self.feature!r} is given by name but X has no column names: "
                    "pass a DataFrame (set_output(transform='pandas') on the pipeline) or a "
                    "column index")
            if self.feature not in names:
                raise ValueError(f"feature {self.feature!r} is not among the columns "
                                 f"{list(names)[:10]}...")
            return int(np.flatnonzero(names == self.feature)[0])
        if isinstance(self.feature, numbers.Integral) and 0 <= self.feature < self.n_features_in_:
            return int(self.feature)
        raise ValueError(f"feature must be a column name or an index in [0, "
                         f"{self.n_features_in_}), got {self.feature!r}")

    def fit(self, X, y):
        """Learn the direction and a monotone calibration of the feature.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Features, among them the column ``feature`` names (named by a string,
            it needs a DataFrame).
        y : array-like of shape (n_samples,)
            The meta target, with exactly two values; ``pos_label`` (default: the
            larger one, 1) means "correct".

        Returns
        -------
        self : SingleMetricClassifier
            The fitted estimator.
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_ = check_binary_target(y, self.pos_label)
        self.column_ = self._column()
        target = (y == self.classes_[1]).astype(int)
        values = X[:, self.column_]
        self.direction_ = 1 if roc_auc_score(target, values) >= 0.5 else -1
        signed = (self.direction_ * values)[:, None]
        self.center_, self.scale_ = signed.mean(), signed.std() or 1.0
        self.calibration_ = logistic_regression(np.inf, 0.0, 1000, None).fit(
            (signed - self.center_) / self.scale_, target)
        if self.calibration_.coef_[0, 0] < 0:  # no monotone signal: a constant prior
            self.calibration_.coef_[:] = 0.0
            self.calibration_.intercept_[:] = np.log(target.mean() / (1 - target.mean()))
        return self

    def signed_feature(self, X):
        """The feature times ``direction_``: the paper's threshold score.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Features, with the columns seen in ``fit``.

        Returns
        -------
        signed : ndarray of float64, shape (n_samples,)
            The feature's values times ``direction_``: higher = more likely correct.
        """
        check_is_fitted(self, "calibration_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.direction_ * X[:, self.column_]

    def _calibrated(self, X):
        return (self.signed_feature(X)[:, None] - self.center_) / self.scale_

    def decision_function(self, X):
        """Log-odds of "correct": an increasing affine function of the signed feature, so
        it ranks samples exactly as thresholding the feature does (0 = 50 %).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Features, with the columns seen in ``fit``.

        Returns
        -------
        log_odds : ndarray of shape (n_samples,)
            The calibration's log-odds of "correct".
        """
        z = self._calibrated(X)  # checks fitting first
        return self.calibration_.decision_function(z)

    def predict_proba(self, X):
        """(n_samples, 2): P(wrong / OoD), P(correct), monotone in the signed feature.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Features, with the columns seen in ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Column 0: P(wrong / OoD); column 1: P(correct).
        """
        z = self._calibrated(X)
        return self.calibration_.predict_proba(z)
