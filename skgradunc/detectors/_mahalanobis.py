"""The class-conditional Mahalanobis detector (Lee, Lee, Lee & Shin, NeurIPS 2018): one
Gaussian per class with a covariance the classes share, fitted on in-distribution data;
the score is minus the distance to the nearest class mean."""

import numbers

import numpy as np
import scipy.linalg
from sklearn.covariance import empirical_covariance, ledoit_wolf, shrunk_covariance
from sklearn.utils.validation import validate_data

from ._outlier import InDistributionDetector

__all__ = ["MahalanobisDetector"]


class MahalanobisDetector(InDistributionDetector):
    """Class-conditional Mahalanobis distance with a tied covariance, on any features.

    ``fit`` estimates each class's mean and the within-class covariance they share
    (pooled over the classes, shrunk towards a scaled identity: Ledoit-Wolf by default,
    as scikit-learn's ``LedoitWolf``, which keeps it invertible when there are few
    samples per feature). ``score_samples(x) = -min_c (x - mu_c)^T S^-1 (x - mu_c)``:
    higher means more typical. Compose it after
    :class:`~skgradunc.GradientMetricTransformer` (and a scaler) in a Pipeline.

    Parameters
    ----------
    shrinkage : "auto", float in [0, 1] or None, default="auto"
        ``"auto"``: the Ledoit-Wolf shrinkage; a float: that shrinkage
        (``sklearn.covariance.shrunk_covariance``); None: the empirical covariance
        (its pseudo-inverse where singular).
    tpr : float in (0, 1), default=0.95
        The fraction of the training samples ``predict`` keeps as in distribution: the
        threshold ``offset_`` is their score's (1 - tpr) quantile.

    Attributes
    ----------
    classes_ : ndarray
        The class labels seen in ``fit`` (one class when ``y`` is None).
    means_ : ndarray of shape (n_classes, n_features)
    covariance_ : ndarray of shape (n_features, n_features)
        The shared (shrunk) covariance.
    precision_ : ndarray of shape (n_features, n_features)
        Its (pseudo-)inverse.
    shrinkage_ : float
        The shrinkage used.
    offset_ : float
        The score threshold of ``predict`` and ``decision_function``.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from skgradunc.detectors import MahalanobisDetector
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.normal(size=(200, 3)) + np.repeat([[0, 0, 0], [5, 5, 5]], 100, 0), \\
    ...     np.repeat([0, 1], 100)
    >>> detector = MahalanobisDetector().fit(X, y)
    >>> detector.predict([[0, 0, 0], [5, 5, 5], [20, -20, 0]]).tolist()
    [1, 1, -1]
    """

    def __init__(self, *, shrinkage="auto", tpr=0.95):
        self.shrinkage = shrinkage
        self.tpr = tpr

    def fit(self, X, y=None):
        """Estimate the class means and their shared covariance on in-distribution data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In-distribution features, e.g. gradient metrics of the training images.
        y : array-like of shape (n_samples,), default=None
            Class labels (the network's classes); None: one class.

        Returns
        -------
        self : MahalanobisDetector
            The fitted detector.
        """
        self._check_tpr()
        shrinkage = self.shrinkage
        if not (shrinkage in ("auto", None) or isinstance(shrinkage, numbers.Real)
                and not isinstance(shrinkage, bool) and 0 <= shrinkage <= 1):
            raise ValueError(f"shrinkage must be 'auto', a number in [0, 1] or None, got "
                             f"{shrinkage!r}")
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        labels = np.zeros(len(X), dtype=int) if y is None else np.asarray(y)
        if labels.shape != (len(X),):
            raise ValueError(f"y must hold one class label per sample: shape {labels.shape} "
                             f"for {len(X)} samples")
        self.classes_, index = np.unique(labels, return_inverse=True)
        self.means_ = np.stack([X[index == k].mean(axis=0)
                                for k in range(len(self.classes_))])
        centred = X - self.means_[index]
        if shrinkage == "auto":
            self.covariance_, self.shrinkage_ = ledoit_wolf(centred, assume_centered=True)
        else:
            empirical = empirical_covariance(centred, assume_centered=True)
            self.shrinkage_ = 0.0 if shrinkage is None else float(shrinkage)
            self.covariance_ = shrunk_covariance(empirical, self.shrinkage_)
        self.precision_ = scipy.linalg.pinvh(self.covariance_)
        self.offset_ = 0.0
        self._fit_threshold(self._scores(X))
        return self

    def _scores(self, X):
        X = validate_data(self, X, dtype=np.float64, reset=False)
        distances = np.stack([np.einsum("ij,jk,ik->i", X - mean, self.precision_, X - mean)
                              for mean in self.means_])
        return -distances.min(axis=0)
