"""The scores by name, as scikit-learn scorers for ``scoring=``."""

from sklearn.metrics import make_scorer

from ._calibration import expected_calibration_error
from ._ranking import aupr_in, aupr_out, auroc, fpr_at_95_tpr_in, fpr_at_95_tpr_out, fpr_at_tpr
from ._selective import aurc, augrc

__all__ = ["SCORERS", "scorer"]

#: The scores :func:`scorer` takes by name: ``{name: (score function, greater is better)}``.
SCORERS = {
    "auroc": (auroc, True),
    "aupr_in": (aupr_in, True),
    "aupr_out": (aupr_out, True),
    "fpr_at_95tpr": (fpr_at_tpr, False),   # the in-distribution-positive convention
    "fpr_at_95tpr_in": (fpr_at_95_tpr_in, False),
    "fpr_at_95tpr_out": (fpr_at_95_tpr_out, False),
    "ece": (expected_calibration_error, False),
    "aurc": (aurc, False),
    "augrc": (augrc, False),
}


def scorer(name):
    """A scikit-learn scorer for ``scoring=``.

    It uses the estimator's ``predict_proba`` (column of class 1, "correct") or, when
    there is none, ``decision_function``, else ``score_samples``: an outlier detector
    (:class:`~skgradunc.detectors.KNNDetector`, scikit-learn's ``IsolationForest``, ...)
    scores with it as well, y being 1 for in-distribution samples. The FPRs, the ECE,
    the AURC and the AUGRC are lower-is-better, so, as scikit-learn's convention wants,
    their scorers return the negation.

    Parameters
    ----------
    name : {"auroc", "aupr_in", "aupr_out", "fpr_at_95tpr", "fpr_at_95tpr_in", \
            "fpr_at_95tpr_out", "ece", "aurc", "augrc"}
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
