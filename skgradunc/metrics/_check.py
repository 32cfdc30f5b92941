"""The one input check of every score: (y_correct, confidence) as 1-D arrays of equal
length, labels 0 / 1 with both present, finite confidences."""

import numpy as np

__all__ = ["check_scores"]


def check_scores(y_correct, confidence):
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
