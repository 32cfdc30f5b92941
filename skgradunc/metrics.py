"""Threshold-free scores of a confidence for "prediction correct".

Every function takes ``(y_correct, confidence)``: ``y_correct`` is 1 where the
network's prediction is correct and 0 where it is wrong or the input is out of
distribution (see :func:`skgradunc.correctness_target`); ``confidence`` is any
score that is *higher when the prediction is more likely correct* (e.g.
``MetaClassifier.predict_proba(X)[:, 1]`` or the max softmax probability).

* :func:`auroc`     - area under the ROC curve (direction-free up to 1 - x).
* :func:`aupr_in`   - average precision with "correct" as the positive class.
* :func:`aupr_out`  - average precision with "incorrect / OoD" as the positive class,
  scored by the negated confidence (Hendrycks & Gimpel 2017; the paper's AUPR-Out).
* :func:`fpr_at_tpr` - false-positive rate (wrong predictions accepted) at the
  threshold where the true-positive rate (correct predictions accepted) first
  reaches ``tpr`` (0.95: "FPR at 95 % TPR").

:func:`scorer` wraps them for ``scoring=`` in ``cross_val_score`` and ``GridSearchCV``.
"""

import numbers

import numpy as np
from sklearn.metrics import average_precision_score, make_scorer, roc_auc_score, roc_curve

__all__ = ["auroc", "aupr_in", "aupr_out", "fpr_at_tpr", "scorer", "SCORERS"]


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
    """Area under the ROC curve of ``confidence`` for "correct" (higher = better)."""
    y, score = _check(y_correct, confidence)
    return float(roc_auc_score(y, score))


def aupr_in(y_correct, confidence):
    """Average precision with correct predictions as the positive class."""
    y, score = _check(y_correct, confidence)
    return float(average_precision_score(y, score))


def aupr_out(y_correct, confidence):
    """Average precision with wrong / OoD as the positive class, scored by -confidence."""
    y, score = _check(y_correct, confidence)
    return float(average_precision_score(1 - y, -score))


def fpr_at_tpr(y_correct, confidence, tpr=0.95):
    """Fraction of wrong predictions accepted when ``tpr`` of the correct ones are.

    Lower is better.
    """
    if not isinstance(tpr, numbers.Real) or not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr!r}")
    y, score = _check(y_correct, confidence)
    false_positive, true_positive, _ = roc_curve(y, score, drop_intermediate=False)
    return float(false_positive[np.searchsorted(true_positive, tpr, side="left")])


SCORERS = {
    "auroc": (auroc, True),
    "aupr_in": (aupr_in, True),
    "aupr_out": (aupr_out, True),
    "fpr_at_95tpr": (fpr_at_tpr, False),
}


def scorer(name):
    """A scikit-learn scorer for ``scoring=``.

    It uses the estimator's ``predict_proba`` (column of class 1, "correct") or, when
    there is none, ``decision_function``. ``"fpr_at_95tpr"`` is lower-is-better, so,
    as scikit-learn's convention wants, the scorer returns its negation.

    Parameters
    ----------
    name : {"auroc", "aupr_in", "aupr_out", "fpr_at_95tpr"}

    Examples
    --------
    >>> from skgradunc import metrics
    >>> metrics.scorer("aupr_out")
    make_scorer(aupr_out, response_method=('predict_proba', 'decision_function'))
    """
    if name not in SCORERS:
        raise ValueError(f"unknown score {name!r}; choose one of {sorted(SCORERS)}")
    function, greater_is_better = SCORERS[name]
    return make_scorer(function, greater_is_better=greater_is_better,
                       response_method=("predict_proba", "decision_function"))
