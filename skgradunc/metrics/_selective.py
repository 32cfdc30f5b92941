"""Selective classification: the network answers where its confidence is at least a
threshold and abstains elsewhere. Coverage is the fraction it answers; the (selective)
risk is the fraction of wrong answers among them; the generalized risk (Traub et al. 2024)
the fraction of *all* inputs answered wrongly.

The curve has one point per distinct confidence: inputs of equal confidence are accepted
or refused together, as any threshold must.
"""

import numpy as np

from .._validation import check_number, is_finite_real
from ._check import check_scores

__all__ = ["risk_coverage_curve", "aurc", "augrc", "risk_at_coverage", "coverage_at_risk"]


def risk_coverage_curve(y_correct, confidence):
    """Coverage, selective risk and generalized risk at every threshold.

    Parameters
    ----------
    y_correct : array-like of {0, 1}, shape (n_samples,)
        1 where the prediction is correct, 0 where it is wrong or the input is out of
        distribution.
    confidence : array-like of float, shape (n_samples,)
        Higher when the prediction is more likely correct.

    Returns
    -------
    coverage : ndarray of shape (n_thresholds,)
        Fraction of the inputs whose confidence is ``>= thresholds[j]``, increasing.
    risk : ndarray of shape (n_thresholds,)
        Fraction of wrong predictions among those inputs.
    generalized_risk : ndarray of shape (n_thresholds,)
        Wrong predictions among those inputs, divided by all inputs.
    thresholds : ndarray of shape (n_thresholds,)
        The distinct confidences, decreasing.

    Examples
    --------
    >>> from skgradunc.metrics import risk_coverage_curve
    >>> coverage, risk, _, thresholds = risk_coverage_curve([1, 0, 1, 1], [0.9, 0.8, 0.8, 0.1])
    >>> coverage.tolist(), risk.tolist(), thresholds.tolist()
    ([0.25, 0.75, 1.0], [0.0, 0.3333333333333333, 0.25], [0.9, 0.8, 0.1])
    """
    y, score = check_scores(y_correct, confidence)
    order = np.argsort(-score, kind="stable")
    score, wrong = score[order], 1 - y[order]
    # the last input of each block of equal confidence: where a threshold can cut
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    accepted = last + 1
    errors = np.cumsum(wrong)[last]
    return (accepted / len(score), errors / accepted, errors / len(score), score[last])


def aurc(y_correct, confidence):
    """Area under the risk-coverage curve (Geifman & El-Yaniv 2017). Lower is better.

    The mean, over the inputs taken in order of decreasing confidence, of the selective
    risk once that input is accepted: ``(1/n) sum_k errors(k) / k``, a block of equal
    confidences entering at once.

    Parameters
    ----------
    y_correct : array-like of {0, 1}, shape (n_samples,)
        1 where the prediction is correct, 0 where it is wrong or the input is out of
        distribution.
    confidence : array-like of float, shape (n_samples,)
        Higher when the prediction is more likely correct.

    Returns
    -------
    float
        The AURC, in [0, 1].

    Examples
    --------
    >>> from skgradunc.metrics import aurc
    >>> aurc([1, 1, 0, 1], [0.9, 0.8, 0.7, 0.6])   # (0 + 0 + 1/3 + 1/4) / 4
    0.14583333333333331
    """
    coverage, risk, _, _ = risk_coverage_curve(y_correct, confidence)
    return float(np.sum(np.diff(coverage, prepend=0.0) * risk))


def augrc(y_correct, confidence):
    """Area under the generalized risk-coverage curve (Traub et al. 2024). Lower is better.

    The generalized risk (wrong and accepted, over all inputs) integrated over coverage
    from (0, 0) by the trapezoidal rule. It equals the authors' closed form
    ``(1 - AUROC) * acc * (1 - acc) + (1 - acc)**2 / 2``: the rate at which a wrong
    prediction is accepted by a threshold that a random input would pass.

    Parameters
    ----------
    y_correct : array-like of {0, 1}, shape (n_samples,)
        1 where the prediction is correct, 0 where it is wrong or the input is out of
        distribution.
    confidence : array-like of float, shape (n_samples,)
        Higher when the prediction is more likely correct.

    Returns
    -------
    float
        The AUGRC, in [0, 0.5].

    Examples
    --------
    >>> from skgradunc.metrics import augrc
    >>> round(augrc([1, 1, 0, 1], [0.9, 0.8, 0.7, 0.6]), 6)   # (1 - 2/3) 3/16 + 1/32
    0.09375
    """
    coverage, _, generalized, _ = risk_coverage_curve(y_correct, confidence)
    coverage, generalized = np.r_[0.0, coverage], np.r_[0.0, generalized]
    return float(np.sum(np.diff(coverage) * (generalized[1:] + generalized[:-1]) / 2))


def risk_at_coverage(y_correct, confidence, coverage):
    """Selective risk of the threshold that answers at least a fraction ``coverage``.

    The highest threshold whose coverage reaches ``coverage`` (a block of equal
    confidences may carry it past).

    Parameters
    ----------
    y_correct : array-like of {0, 1}, shape (n_samples,)
    confidence : array-like of float, shape (n_samples,)
        Higher when the prediction is more likely correct.
    coverage : float in (0, 1]
        The fraction of inputs to answer.

    Returns
    -------
    float
        The fraction of wrong predictions among the answered inputs.

    Examples
    --------
    >>> from skgradunc.metrics import risk_at_coverage
    >>> risk_at_coverage([1, 1, 0, 1], [0.9, 0.8, 0.7, 0.6], coverage=0.5)
    0.0
    """
    _check_fraction(coverage, "coverage", include_zero=False)
    covered, risk, _, _ = risk_coverage_curve(y_correct, confidence)
    # the coverages are k / n: a tolerance keeps 0.3 * 10 from missing 3 / 10
    return float(risk[np.searchsorted(covered, coverage - 1e-12)])


def coverage_at_risk(y_correct, confidence, risk):
    """Largest coverage whose selective risk is at most ``risk`` (0 if there is none).

    Parameters
    ----------
    y_correct : array-like of {0, 1}, shape (n_samples,)
    confidence : array-like of float, shape (n_samples,)
        Higher when the prediction is more likely correct.
    risk : float in [0, 1]
        The largest acceptable fraction of wrong answers.

    Returns
    -------
    float
        The fraction of inputs answered at the best such threshold.

    Examples
    --------
    >>> from skgradunc.metrics import coverage_at_risk
    >>> coverage_at_risk([1, 1, 0, 1], [0.9, 0.8, 0.7, 0.6], risk=0.25)
    1.0
    """
    _check_fraction(risk, "risk", include_zero=True)
    covered, risks, _, _ = risk_coverage_curve(y_correct, confidence)
    within = risks <= risk + 1e-12
    return float(covered[within].max()) if within.any() else 0.0


def _check_fraction(value, name, include_zero):
    interval = "[0, 1]" if include_zero else "(0, 1]"
    check_number(value, name, lambda v: is_finite_real(v) and (v >= 0 if include_zero else v > 0)
                 and v <= 1, f"a fraction in {interval}")
