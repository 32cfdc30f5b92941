"""Any fitted confidence as a reject rule at a chosen in-distribution rate, calibrated on
held-out in-distribution inputs, with conformal p-values."""

import math
import warnings

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from .._confidence import RESPONSE_METHODS, confidence_of
from ..detectors._outlier import InDistributionDetector
from ._pvalues import conformal_pvalues

__all__ = ["ConformalDetector"]


class ConformalDetector(InDistributionDetector):
    """Accept an input where a fitted estimator's confidence reaches a threshold set on
    held-out in-distribution data, so that a fraction ``tpr`` of in-distribution inputs
    is accepted; flag the rest (scikit-learn's outlier convention: +1 / -1).

    ``fit(X)`` never refits ``estimator``: it scores ``X``, held-out in-distribution
    inputs the estimator has not seen, and keeps the ``k``-th lowest score as the
    threshold, ``k = floor((1 - tpr) (n + 1))``. Then an exchangeable in-distribution
    input is accepted with probability at least ``tpr`` (over the calibration draw; at
    most ``tpr + 1 / (n + 1)`` for continuous scores): the split-conformal guarantee.
    ``predict(X) == 1`` exactly where :meth:`pvalues` exceeds ``k / (n + 1)``, the largest
    p-value level not above ``1 - tpr`` (up to the rounding of ``1 - tpr``). A false-alarm
    budget of 5 % of the in-distribution inputs is ``tpr=0.95``.

    Parameters
    ----------
    estimator : fitted estimator or callable
        Its confidence (higher = more typical / more likely correct): a meta
        classifier's P(correct) (``predict_proba``'s class-1 column), an outlier
        detector's ``score_samples`` or ``decision_function``, a network's softmax
        maximum (``response_method="max_proba"``), or a function ``f(X) -> scores``
        (e.g. ``functools.partial(gradnorm_score, network)``). It is used as fitted; wrap
        it in :class:`sklearn.frozen.FrozenEstimator` for it to stay fitted through
        :func:`sklearn.base.clone`.
    tpr : float in (0, 1), default=0.95
        Fraction of in-distribution inputs to accept.
    response_method : {"auto", "predict_proba", "decision_function", "score_samples", \
            "max_proba"}, default="auto"
        Which output is the confidence; "auto": the first of ``predict_proba``,
        ``decision_function``, ``score_samples`` the estimator has.

    Attributes
    ----------
    calibration_scores_ : ndarray of shape (n_calibration,)
        The held-out inputs' scores, sorted.
    offset_ : float
        The threshold: ``decision_function = score_samples - offset_``; ``-inf`` when the
        calibration set is too small to reject anything at ``tpr`` (a warning says so).

    See Also
    --------
    skgradunc.conformal.conformal_pvalues : The p-values alone, from score arrays.
    sklearn.model_selection.FixedThresholdClassifier : A meta classifier's threshold on
        P(correct) chosen by hand.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.covariance import EllipticEnvelope
    >>> from skgradunc.conformal import ConformalDetector
    >>> rng = np.random.default_rng(0)
    >>> X_train, X_held_out = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
    >>> scorer = EllipticEnvelope(random_state=0).fit(X_train)
    >>> detector = ConformalDetector(scorer, tpr=0.9).fit(X_held_out)
    >>> fresh = rng.normal(size=(20000, 2))
    >>> round(float((detector.predict(fresh) == 1).mean()), 2)   # 0.9 up to sampling
    0.9
    >>> detector.pvalues([[0.0, 0.0], [6.0, 6.0]]).round(3)
    array([0.996, 0.002])
    """

    def __init__(self, estimator, *, tpr=0.95, response_method="auto"):
        self.estimator = estimator
        self.tpr = tpr
        self.response_method = response_method

    def fit(self, X, y=None):
        """Score held-out in-distribution inputs and set the threshold.

        Parameters
        ----------
        X : array-like
            Held-out in-distribution inputs, in the form ``estimator`` takes; not seen
            when it was fitted.
        y : None
            Ignored.

        Returns
        -------
        self : ConformalDetector
            The detector, with its threshold.
        """
        self._check_tpr()
        tpr = self.tpr
        if self.response_method != "auto" and self.response_method not in RESPONSE_METHODS:
            raise ValueError(f"response_method must be 'auto' or one of "
                             f"{list(RESPONSE_METHODS)}, got {self.response_method!r}")
        self._check_estimator_fitted()
        scores = np.sort(confidence_of(self.estimator, X, self.response_method))
        if len(scores) == 0:
            raise ValueError("X holds no calibration input")
        k = _rank(len(scores), tpr)
        if k == 0:
            needed = math.floor(1 / (1 - tpr)) - 2
            while _rank(needed, tpr) == 0:
                needed += 1
            warnings.warn(
                f"{len(scores)} calibration inputs cannot reject anything at tpr={tpr}: "
                f"at least {needed} are needed; every input is accepted",
                UserWarning, stacklevel=2)
        self.calibration_scores_ = scores
        self.offset_ = float(scores[k - 1]) if k > 0 else -np.inf
        return self

    def _check_estimator_fitted(self):
        if callable(self.estimator) and not hasattr(self.estimator, "fit"):
            return
        try:
            check_is_fitted(self.estimator)
        except NotFittedError as error:
            raise NotFittedError(
                f"ConformalDetector uses its estimator as fitted, and "
                f"{type(self.estimator).__name__} is not: fit it first (on other data than "
                "the calibration inputs), or wrap it in sklearn.frozen.FrozenEstimator to "
                "keep it fitted through clone") from error

    def _scores(self, X):
        # the estimator's confidence (higher = more typical): what score_samples,
        # decision_function and predict of InDistributionDetector read
        return confidence_of(self.estimator, X, self.response_method)

    def pvalues(self, X):
        """Conformal p-values against the calibration scores
        (:func:`~skgradunc.conformal.conformal_pvalues`); feed a batch's to
        :func:`~skgradunc.conformal.benjamini_hochberg`.

        Parameters
        ----------
        X : array-like
            Inputs in the form ``estimator`` takes.

        Returns
        -------
        pvalues : ndarray of shape (n_samples,)
            Small for inputs less typical than the calibration set.
        """
        scores = self.score_samples(X)      # checks that the detector is fitted
        return conformal_pvalues(self.calibration_scores_, scores)


def _rank(n, tpr):
    """``k = floor((1 - tpr)(n + 1))``: the threshold's rank among ``n`` calibration scores
    (a hair of tolerance: 1 - 0.9 is 0.0999... in floating point)."""
    return math.floor((1 - tpr) * (n + 1) + 1e-9)
