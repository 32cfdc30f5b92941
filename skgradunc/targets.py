"""The meta target: was the network's prediction correct?"""

import numpy as np
import torch

from ._validation import check_samples
from .gradients import evaluation_mode

__all__ = ["correctness_target", "append_out_of_distribution", "OUT_OF_DISTRIBUTION"]

OUT_OF_DISTRIBUTION = -1


def _predict(estimator, X, batch_size=1024):
    """Predicted classes and the labels the network knows."""
    if isinstance(estimator, torch.nn.Module):
        X = check_samples(X, getattr(estimator, "input_shape", None))
        device = next(iter(estimator.parameters()), torch.empty(0)).device
        with torch.no_grad(), evaluation_mode(estimator):
            logits = torch.cat([estimator(torch.from_numpy(X[i:i + batch_size]).to(device))
                                for i in range(0, len(X), batch_size)])
        return logits.argmax(1).cpu().numpy(), np.arange(logits.shape[1])
    if not hasattr(estimator, "predict"):
        raise TypeError(f"{type(estimator).__name__} has no predict method: pass a fitted "
                        "classifier, FrozenEstimator(classifier) or a torch module")
    predictions = np.asarray(estimator.predict(X))
    return predictions, np.asarray(getattr(estimator, "classes_", np.unique(predictions)))


def correctness_target(estimator, X, y):
    """1 where the network's prediction equals ``y``, 0 where it is wrong or OoD.

    Rows whose label is -1 are out of distribution ("known unknowns"): their target
    is 0 whatever the network predicts (they are not even predicted).

    Parameters
    ----------
    estimator : fitted classifier, FrozenEstimator, or torch.nn.Module returning logits
    X : array-like of inputs the network takes
    y : array-like of shape (n_samples,)
        True labels, or -1 for out-of-distribution rows.

    Returns
    -------
    y_correct : ndarray of int64, shape (n_samples,)

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skgradunc import correctness_target
    >>> net = torch.nn.Linear(2, 3)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.eye(3, 2)); _ = net.bias.zero_()
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]], dtype=np.float32)
    >>> correctness_target(net, X, [0, 0, -1])       # predicted 0, 1, (OoD)
    array([1, 0, 0])
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D labels, got shape {y.shape}")
    n_samples = len(X) if hasattr(X, "__len__") else np.asarray(X).shape[0]
    if len(y) != n_samples:
        raise ValueError(f"y has {len(y)} labels but X has {n_samples} samples")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity")
    target = np.zeros(len(y), dtype=np.int64)
    inside = y != OUT_OF_DISTRIBUTION
    if not inside.any():
        return target
    rows = np.flatnonzero(inside)
    X_inside = X[rows] if len(rows) < len(y) else X
    predictions, known = _predict(estimator, X_inside)
    unknown = np.setdiff1d(np.unique(y[inside]), known)
    if len(unknown):
        raise ValueError(
            f"y has labels the network does not know: {unknown[:10].tolist()} (known: "
            f"{known[:20].tolist()}); mark out-of-distribution rows with -1")
    target[rows] = predictions == y[inside]
    return target


def append_out_of_distribution(X, y, X_ood):
    """Append out-of-distribution inputs labelled -1 ("known unknowns").

    ``correctness_target(net, *append_out_of_distribution(X, y, X_ood))`` then gives
    the meta target with the OoD rows as 0, as in section 5 of the paper.

    Returns
    -------
    X_all : ndarray, X followed by X_ood
    y_all : ndarray, y followed by -1 for every row of X_ood

    Examples
    --------
    >>> import numpy as np
    >>> from skgradunc import append_out_of_distribution
    >>> X_all, y_all = append_out_of_distribution(np.zeros((2, 3)), [4, 7], np.ones((1, 3)))
    >>> X_all.shape, y_all.tolist()
    ((3, 3), [4, 7, -1])
    """
    X, X_ood, y = np.asarray(X), np.asarray(X_ood), np.asarray(y)
    if X.shape[1:] != X_ood.shape[1:]:
        raise ValueError(f"X_ood has samples of shape {X_ood.shape[1:]}, X has {X.shape[1:]}")
    if len(y) != len(X):
        raise ValueError(f"y has {len(y)} labels but X has {len(X)} samples")
    labels = np.full(len(X_ood), OUT_OF_DISTRIBUTION,
                     dtype=np.result_type(y.dtype, np.int64))
    return np.concatenate([X, X_ood.astype(X.dtype, copy=False)]), np.concatenate([y, labels])
