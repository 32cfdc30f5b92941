"""Threshold-free scores of a confidence for "prediction correct": AUROC, both AUPRs and
the FPR at a TPR, in either of the field's conventions."""

import numbers

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ._check import check_scores

__all__ = ["auroc", "aupr_in", "aupr_out", "fpr_at_tpr", "fpr_at_95_tpr_in",
           "fpr_at_95_tpr_out"]


def auroc(y_correct, confidence):
    """Area under the ROC curve of ``confidence`` for "correct" (higher = better).

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
        The AUROC, in [0, 1] (0.5: no better than chance).

    Examples
    --------
    >>> from skgradunc.metrics import auroc
    >>> y, c = [1, 1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    >>> auroc(y, c)      # 6 of the 8 (correct, wrong) pairs are ranked right
    0.75
    """
    y, score = check_scores(y_correct, confidence)
    return float(roc_auc_score(y, score))


def aupr_in(y_correct, confidence):
    """Average precision with correct predictions as the positive class.

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
        The average precision (scikit-learn's ``average_precision_score``) of
        ``confidence`` for "correct".

    Examples
    --------
    >>> from skgradunc.metrics import aupr_in
    >>> y, c = [1, 1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    >>> aupr_in(y, c)    # precision at each correct one: (1 + 1 + 3/4 + 4/5) / 4
    0.8875
    """
    y, score = check_scores(y_correct, confidence)
    return float(average_precision_score(y, score))


def aupr_out(y_correct, confidence):
    """Average precision with wrong / OoD as the positive class, scored by -confidence.

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
        The average precision (scikit-learn's ``average_precision_score``) of
        ``-confidence`` for "wrong / OoD".

    Examples
    --------
    >>> from skgradunc.metrics import aupr_out
    >>> y, c = [1, 1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    >>> aupr_out(y, c)   # from the lowest confidence: precision at each wrong one (1 + 2/4) / 2
    0.75
    """
    y, score = check_scores(y_correct, confidence)
    return float(average_precision_score(1 - y, -score))


def fpr_at_tpr(y_correct, confidence, tpr=0.95, positive="correct"):
    """False-positive rate where the true-positive rate first reaches ``tpr``.

    Lower is better.

    Parameters
    ----------
    y_correct : array-like of {0, 1}, shape (n_samples,)
    confidence : array-like of float, shape (n_samples,)
        Higher when the prediction is more likely correct.
    tpr : float in (0, 1], default=0.95
        The true-positive rate to reach (0.95: "FPR at 95 % TPR").
    positive : {"correct", "wrong"}, default="correct"
        The positive class. ``"correct"``: the fraction of wrong / OoD inputs
        accepted when ``tpr`` of the correct ones are (in-distribution positive:
        Hendrycks & Gimpel 2017, UQGAN). ``"wrong"``: the fraction of correct
        predictions flagged when ``tpr`` of the wrong / OoD ones are flagged,
        flagging by low confidence (OoD positive: OpenOOD, pytorch-ood).

    Returns
    -------
    float
        The false-positive rate, in [0, 1], at the first threshold whose
        true-positive rate reaches ``tpr``.

    Examples
    --------
    >>> from skgradunc.metrics import fpr_at_tpr
    >>> y, c = [1, 1, 1, 0, 0], [0.9, 0.8, 0.3, 0.4, 0.1]
    >>> fpr_at_tpr(y, c), fpr_at_tpr(y, c, positive="wrong")
    (0.5, 0.3333333333333333)
    """
    if not isinstance(tpr, numbers.Real) or not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr!r}")
    if positive not in ("correct", "wrong"):
        raise ValueError(f"positive must be 'correct' or 'wrong', got {positive!r}")
    y, score = check_scores(y_correct, confidence)
    if positive == "wrong":
        y, score = 1 - y, -score
    false_positive, true_positive, _ = roc_curve(y, score, drop_intermediate=False)
    return float(false_positive[np.searchsorted(true_positive, tpr, side="left")])


def fpr_at_95_tpr_in(y_correct, confidence):
    """FPR at 95 % TPR with correct / in-distribution as the positive class: the fraction
    of wrong / OoD inputs accepted while 95 % of the correct ones are (Hendrycks & Gimpel
    2017, UQGAN). Lower is better.

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
        The false-positive rate, in [0, 1]: :func:`fpr_at_tpr` with ``tpr=0.95`` and
        ``positive="correct"``.

    Examples
    --------
    >>> from skgradunc.metrics import fpr_at_95_tpr_in
    >>> y, c = [1, 1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    >>> fpr_at_95_tpr_in(y, c)   # accepting all 4 correct (c >= 0.5) accepts 1 of 2 wrong
    0.5
    """
    return fpr_at_tpr(y_correct, confidence, 0.95, positive="correct")


def fpr_at_95_tpr_out(y_correct, confidence):
    """FPR at 95 % TPR with wrong / OoD as the positive class: the fraction of correct
    predictions flagged while 95 % of the wrong / OoD inputs are (OpenOOD, pytorch-ood).
    Lower is better.

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
        The false-positive rate, in [0, 1]: :func:`fpr_at_tpr` with ``tpr=0.95`` and
        ``positive="wrong"``.

    Examples
    --------
    >>> from skgradunc.metrics import fpr_at_95_tpr_out
    >>> y, c = [1, 1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    >>> fpr_at_95_tpr_out(y, c)  # flagging both wrong (c <= 0.7) flags 2 of 4 correct
    0.5
    """
    return fpr_at_tpr(y_correct, confidence, 0.95, positive="wrong")
