"""The k-nearest-neighbour detector (Sun, Ming, Zhu & Li, ICML 2022): the distance of
an input's normalised features to its k-th nearest in-distribution training sample."""

import numbers

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import validate_data

from ._outlier import InDistributionDetector

__all__ = ["KNNDetector"]


def _normalised(X):
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


class KNNDetector(InDistributionDetector):
    """Distance to the k-th nearest training sample, on L2-normalised features.

    ``score_samples(x) = -||z - z_(k)||``, with z the features scaled to unit length and
    z_(k) the k-th nearest of the training samples' (exact, scikit-learn's
    ``NearestNeighbors``): higher means more typical. The training samples' own scores,
    for the threshold, leave each sample out of its own neighbours.

    Parameters
    ----------
    n_neighbors : int, default=50
        The k of the k-th neighbour (Sun et al.: 50 on CIFAR-10's 50,000 training
        images); below the number of training samples.
    normalize : bool, default=True
        Scale every sample's features to unit L2 norm first (the method's step; put a
        ``StandardScaler`` before it when the features have different units, as
        gradient metrics do).
    tpr : float in (0, 1), default=0.95
        The fraction of the training samples ``predict`` keeps as in distribution.

    Attributes
    ----------
    neighbors_ : sklearn.neighbors.NearestNeighbors
        Fitted on the (normalised) training features.
    offset_ : float
        The score threshold of ``predict`` and ``decision_function``.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from skgradunc.detectors import KNNDetector
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 3)) + [5, 0, 0]
    >>> detector = KNNDetector(n_neighbors=10).fit(X)
    >>> detector.predict([[5, 0, 0], [-5, 0, 0]]).tolist()
    [1, -1]
    """

    def __init__(self, n_neighbors=50, *, normalize=True, tpr=0.95):
        self.n_neighbors = n_neighbors
        self.normalize = normalize
        self.tpr = tpr

    def fit(self, X, y=None):
        """Keep the (normalised) in-distribution features as neighbours.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In-distribution features.
        y : None
            Ignored (scikit-learn's API).

        Returns
        -------
        self : KNNDetector
            The fitted detector.
        """
        self._check_tpr()
        k = self.n_neighbors
        if not (isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1):
            raise ValueError(f"n_neighbors must be a positive integer, got {k!r}")
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        if k >= len(X):
            raise ValueError(f"n_neighbors={k} needs more training samples than that, got "
                             f"{len(X)}")
        Z = _normalised(X) if self.normalize else X
        self.neighbors_ = NearestNeighbors(n_neighbors=k + 1).fit(Z)
        # leave-one-out: a training sample is its own nearest neighbour
        distances, _ = self.neighbors_.kneighbors(Z, n_neighbors=k + 1)
        self.offset_ = 0.0
        self._fit_threshold(-distances[:, -1])
        return self

    def _scores(self, X):
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Z = _normalised(X) if self.normalize else X
        distances, _ = self.neighbors_.kneighbors(Z, n_neighbors=self.n_neighbors)
        return -distances[:, -1]
