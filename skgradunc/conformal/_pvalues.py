"""Conformal p-values of test inputs against in-distribution calibration scores, and the
Benjamini-Hochberg procedure over a batch of them (Bates, Candes, Lei, Romano & Sesia
2023, "Testing for outliers with conformal p-values", Annals of Statistics)."""

import numbers

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["conformal_pvalues", "benjamini_hochberg"]


def conformal_pvalues(calibration_scores, test_scores, *, random_state=None):
    """Marginal conformal p-values: small for inputs less typical than the calibration set.

    ``p(x) = (1 + #{i : s_i <= s(x)}) / (n + 1)`` over the ``n`` calibration scores
    ``s_i`` (higher = more in-distribution). If the calibration inputs and an
    in-distribution test input are exchangeable, ``P(p <= a) <= a`` for every ``a``
    (marginally, over the draw of the calibration set; given one fixed calibration set
    the p-values are only approximately uniform). With ``random_state``, ties are broken
    at random, ``p = (#{s_i < s} + U (1 + #{s_i = s})) / (n + 1)``, which makes them
    exactly uniform rather than conservative.

    Parameters
    ----------
    calibration_scores : array-like of shape (n_calibration,)
        Scores of held-out in-distribution inputs, never used to fit the scorer.
    test_scores : array-like of shape (n_test,)
        Scores of the inputs to test, by the same scorer.
    random_state : None, int or RandomState, default=None
        Unlike elsewhere in scikit-learn, None means *no* randomisation: deterministic
        p-values (ties count against the test input, conservative). An int or a
        RandomState seeds the tie-breaking uniforms.

    Returns
    -------
    pvalues : ndarray of shape (n_test,)
        Deterministic: in ``[1 / (n + 1), 1]``; randomised: in ``[0, 1]``. Reject "in
        distribution" where ``p <= alpha``.

    Examples
    --------
    >>> from skgradunc.conformal import conformal_pvalues
    >>> conformal_pvalues([0.2, 0.5, 0.9, 0.7], [0.1, 0.6, 1.0])
    array([0.2, 0.6, 1. ])
    """
    calibration = _scores(calibration_scores, "calibration_scores")
    test = _scores(test_scores, "test_scores")
    calibration = np.sort(calibration)
    at_most = np.searchsorted(calibration, test, side="right")
    if random_state is None:
        return (1.0 + at_most) / (len(calibration) + 1)
    below = np.searchsorted(calibration, test, side="left")
    uniform = check_random_state(random_state).uniform(size=len(test))
    return (below + uniform * (1.0 + at_most - below)) / (len(calibration) + 1)


def benjamini_hochberg(pvalues, alpha=0.1):
    """The inputs the Benjamini-Hochberg procedure flags at false discovery rate ``alpha``.

    With ``m`` p-values sorted as ``p_(1) <= ... <= p_(m)``, flags every input whose
    p-value is at most ``p_(k)``, ``k`` the largest index with ``p_(k) <= k alpha / m``.
    On conformal p-values of one calibration set (positively dependent), the expected
    fraction of in-distribution inputs among the flagged ones is at most ``alpha``
    (Bates et al. 2023, Theorem 3).

    Parameters
    ----------
    pvalues : array-like of shape (n_test,)
        E.g. :func:`conformal_pvalues`.
    alpha : float in (0, 1), default=0.1
        The false discovery rate to control.

    Returns
    -------
    flagged : ndarray of bool, shape (n_test,)
        True for the inputs declared out of distribution.

    Examples
    --------
    >>> from skgradunc.conformal import benjamini_hochberg
    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5], alpha=0.1).tolist()
    [True, True, True, False]
    """
    if not (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a fraction in (0, 1), got {alpha!r}")
    p = _scores(pvalues, "pvalues")
    if ((p < 0) | (p > 1)).any():
        bad = int(np.flatnonzero((p < 0) | (p > 1))[0])
        raise ValueError(f"pvalues must lie in [0, 1]; sample {bad} is {p[bad]!r}")
    ordered = np.sort(p)
    below = np.flatnonzero(ordered <= alpha * np.arange(1, len(p) + 1) / len(p))
    if len(below) == 0:
        return np.zeros(len(p), dtype=bool)
    return p <= ordered[below[-1]]


def _scores(values, name):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per input), got shape {values.shape}")
    if len(values) == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"{name} contains NaN or infinity (first at sample {bad})")
    return values
