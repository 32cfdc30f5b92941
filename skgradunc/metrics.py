"""Threshold-free scores of a confidence for "prediction correct", and its calibration.

Every function takes ``(y_correct, confidence)``: ``y_correct`` is 1 where the
network's prediction is correct and 0 where it is wrong or the input is out of
distribution (see :func:`skgradunc.correctness_target`); ``confidence`` is any
score that is *higher when the prediction is more likely correct* (e.g.
``MetaClassifier.predict_proba(X)[:, 1]`` or the max softmax probability).

* :func:`auroc`     - area under the ROC curve (direction-free up to 1 - x).
* :func:`aupr_in`   - average precision with "correct" as the positive class.
* :func:`aupr_out`  - average precision with "incorrect / OoD" as the positive class,
  scored by the negated confidence (Hendrycks & Gimpel 2017; the paper's AUPR-Out).
  Both AUPRs are scikit-learn's ``average_precision_score``: the step-wise sum
  sum_n (R_n - R_{n-1}) P_n over the thresholds, without the trapezoidal or
  interpolated precision some papers use (those read slightly higher).
* :func:`fpr_at_tpr` - false-positive rate at the threshold where the true-positive rate
  first reaches ``tpr`` (0.95: "FPR at 95 % TPR"), in either convention of the field:
  ``positive="correct"`` (:func:`fpr_at_95_tpr_in`: wrong / OoD inputs accepted while 95 %
  of the correct ones are; Hendrycks & Gimpel 2017, UQGAN) or ``positive="wrong"``
  (:func:`fpr_at_95_tpr_out`: correct predictions flagged while 95 % of the wrong / OoD
  ones are; OpenOOD, pytorch-ood). They differ; papers' numbers compare only within one.
* :func:`expected_calibration_error` - of a probability of "correct" (a meta
  classifier's ``predict_proba``), in the bins of scikit-learn's ``calibration_curve``
  (whose curve draws the reliability diagram).

:func:`scorer` wraps them for ``scoring=`` in ``cross_val_score`` and ``GridSearchCV``.
"""

import numbers

import numpy as np
from sklearn.metrics import average_precision_score, make_scorer, roc_auc_score, roc_curve

from ._validation import check_positive_int

__all__ = ["auroc", "aupr_in", "aupr_out", "fpr_at_tpr", "fpr_at_95_tpr_in",
           "fpr_at_95_tpr_out", "expected_calibration_error", "scorer", "SCORERS"]


def _check(y_correct, confidence):
    y = np.asarray(y_correct)
    score = np.asarray(confidence, dtype=np.float64)
    if y.ndim != 1 or score.ndim != 1:
        raise ValueError(f"y_correct and confidence must be 1-D, got shapes {y.shape} and "
                         f"{score.shape}")
    if len(y) != len(score):
        raise ValueError(f"y_correct has {len(y)} values but confidence has {len(score)}")
    if not np.isfinite(score).all():
        raise ValueError("confidence contains NaN or infinity")
    if y.dtype == bool:
        y = y.astype(int)
    values = np.unique(y)
    if not np.isin(values, [0, 1]).all():
        raise ValueError(f"y_correct must be 0 (wrong / OoD) or 1 (correct), got values "
                         f"{values[:10].tolist()}")
    if len(values) < 2:
        raise ValueError(f"y_correct holds one class only ({values.tolist()}): the score is "
                         "undefined without both correct and wrong predictions")
    return y.astype(int), score


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
    y, score = _check(y_correct, confidence)
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
    y, score = _check(y_correct, confidence)
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
    y, score = _check(y_correct, confidence)
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
    y, score = _check(y_correct, confidence)
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
    y, p = _check(y_correct, probability)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probability must lie in [0, 1]; got values from "
                         f"{p.min():g} to {p.max():g}")
    counts, correct, total = _reliability_bins(y, p, n_bins, strategy)
    return float(np.abs(correct - total)[counts > 0].sum() / len(p))


def _reliability_bins(y, p, n_bins=15, strategy="uniform"):
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


#: The scores :func:`scorer` takes by name: ``{name: (score function, greater is better)}``.
SCORERS = {
    "auroc": (auroc, True),
    "aupr_in": (aupr_in, True),
    "aupr_out": (aupr_out, True),
    "fpr_at_95tpr": (fpr_at_tpr, False),   # the in-distribution-positive convention
    "fpr_at_95tpr_in": (fpr_at_95_tpr_in, False),
    "fpr_at_95tpr_out": (fpr_at_95_tpr_out, False),
    "ece": (expected_calibration_error, False),
}


def scorer(name):
    """A scikit-learn scorer for ``scoring=``.

    It uses the estimator's ``predict_proba`` (column of class 1, "correct") or, when
    there is none, ``decision_function``, else ``score_samples``: an outlier detector
    (:class:`~skgradunc.detectors.KNNDetector`, scikit-learn's ``IsolationForest``, ...)
    scores with it as well, y being 1 for in-distribution samples. ``"fpr_at_95tpr"``
    is lower-is-better, so, as scikit-learn's convention wants, the scorer returns its
    negation.

    Parameters
    ----------
    name : {"auroc", "aupr_in", "aupr_out", "fpr_at_95tpr", "fpr_at_95tpr_in", \
            "fpr_at_95tpr_out", "ece"}
        ``"fpr_at_95tpr"`` is ``"fpr_at_95tpr_in"`` (correct predictions positive);
        ``"ece"`` needs ``predict_proba``.

    Returns
    -------
    scorer : callable
        A scorer made by :func:`sklearn.metrics.make_scorer`, called as
        ``scorer(estimator, X, y_correct)``; negated for the lower-is-better scores.

    Examples
    --------
    >>> from skgradunc import metrics
    >>> metrics.scorer("aupr_out")
    make_scorer(aupr_out, response_method=('predict_proba', 'decision_function', 'score_samples'))
    """
    if name not in SCORERS:
        raise ValueError(f"unknown score {name!r}; choose one of {sorted(SCORERS)}")
    function, greater_is_better = SCORERS[name]
    return make_scorer(function, greater_is_better=greater_is_better,
                       response_method=("predict_proba", "decision_function",
                                        "score_samples"))
