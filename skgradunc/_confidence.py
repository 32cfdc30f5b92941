"""The one reading of "the estimator's confidence" shared by the scorers' displays and the
conformal detector: higher means more likely correct / more typical."""

import numpy as np

__all__ = ["RESPONSE_METHODS", "confidence_of"]

#: What ``response_method`` may name; "auto" tries the first three in this order.
RESPONSE_METHODS = ("predict_proba", "decision_function", "score_samples", "max_proba")


def confidence_of(estimator, X, response_method="auto"):
    """The confidence ``estimator`` gives each row of ``X``, as a float64 1-D array.

    ``estimator`` is a fitted estimator or any callable ``f(X) -> scores``.
    "predict_proba": the probability of class 1 ("correct") of a binary classifier;
    "max_proba": the largest class probability (a network's softmax maximum);
    "decision_function", "score_samples": as the estimator returns them.
    """
    if response_method != "auto" and response_method not in RESPONSE_METHODS:
        raise ValueError(f"response_method must be 'auto' or one of {list(RESPONSE_METHODS)}, "
                         f"got {response_method!r}")
    if callable(estimator) and not hasattr(estimator, "fit"):
        return _as_scores(estimator(X), "the score function")
    if response_method == "auto":
        names = [m for m in RESPONSE_METHODS[:3] if hasattr(estimator, m)]
        if not names:
            raise TypeError(f"{type(estimator).__name__} has no predict_proba, "
                            "decision_function or score_samples to read a confidence from")
        response_method = names[0]
    source = "predict_proba" if response_method == "max_proba" else response_method
    if not hasattr(estimator, source):
        raise TypeError(f"{type(estimator).__name__} has no {source}")
    values = np.asarray(getattr(estimator, source)(X))
    if response_method == "max_proba":
        values = values.max(axis=1)
    elif response_method == "predict_proba":
        values = values[:, _positive_column(estimator, values)]
    return _as_scores(values, f"{type(estimator).__name__}.{source}")


def _positive_column(estimator, proba):
    classes = list(getattr(estimator, "classes_", range(proba.shape[1])))
    if len(classes) != 2:
        raise ValueError(
            f"predict_proba gives {len(classes)} classes: a confidence of 'correct' needs a "
            "binary classifier (classes 0 = wrong, 1 = correct); for a network's softmax "
            "maximum pass response_method='max_proba'")
    return classes.index(1) if 1 in classes else 1


def _as_scores(values, source):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{source} must give one score per sample, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{source} gave NaN or infinite scores (first at sample "
                         f"{int(np.flatnonzero(~np.isfinite(values))[0])})")
    return values
