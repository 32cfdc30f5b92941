"""The calibration of a probability of "correct": its expected calibration error, in the
bins of scikit-learn's ``calibration_curve``."""

import numpy as np

from .._validation import check_positive_int
from ._check import check_scores

__all__ = ["expected_calibration_error", "reliability_bins"]


def expected_calibration_error(y_correct, probability, n_bins=15, strategy="uniform"):
    """Expected calibration error of a probability of "correct".

    ``sum_b (n_b / n) |accuracy_b - mean probability_b|`` over the bins of
    :func:`sklearn.calibration.calibration_curve` (same ``n_bins`` and
    ``strategy``, empty bins left out), whose curve is the reliability diagram.
    Lower is better; 0 is perfectly calibrated.

    Parameters
    ----------
    y_correct : array-like of {0, 1}, shape (n_samples,)
    probability : array-like of float in [0, 1], shape (n_samples,)
        E.g. ``MetaClassifier.predict_proba(X)[:, 1]``.
    n_bins : int, default=15
        Number of bins the probabilities are sorted into (see ``strategy``).
    strategy : {"uniform", "quantile"}, default="uniform"
        Bins of equal width, or of equal counts.

    Returns
    -------
    float
        The expected calibration error, in [0, 1].

    Examples
    --------
    >>> from skgradunc.metrics import expected_calibration_error
    >>> expected_calibration_error([1, 1, 0, 1], [0.9, 0.9, 0.9, 0.9], n_bins=10)
    0.15000000000000002
    """
    y, p = check_scores(y_correct, probability)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probability must lie in [0, 1]; got values from "
                         f"{p.min():g} to {p.max():g}")
    counts, correct, total = reliability_bins(y, p, n_bins, strategy)
    return float(np.abs(correct - total)[counts > 0].sum() / len(p))


def reliability_bins(y, p, n_bins=15, strategy="uniform"):
    """Per bin of :func:`sklearn.calibration.calibration_curve`: (samples, correct ones,
    sum of probabilities). Sums, so that the uniform bins of several runs pool by adding
    (quantile bins have other edges in every run)."""
    check_positive_int(n_bins, "n_bins")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(p, np.linspace(0, 100, n_bins + 1))
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    bins = np.searchsorted(edges[1:-1], p)   # as calibration_curve bins
    return (np.bincount(bins, minlength=n_bins), np.bincount(bins, weights=y, minlength=n_bins),
            np.bincount(bins, weights=p, minlength=n_bins))
