"""The meta target: was the network's prediction correct?"""

import numpy as np
import torch

from ._outputs import check_scores, class_logits, resolve_output
from ._validation import as_float32_array, check_samples
from .gradients import evaluation_mode

__all__ = ["correctness_target", "append_out_of_distribution", "OUT_OF_DISTRIBUTION"]

OUT_OF_DISTRIBUTION = -1


def _predict(estimator, X, output, batch_size=1024):
    """Predicted classes and the labels the network knows."""
    if isinstance(estimator, torch.nn.Module):
        kind, guessed = resolve_output(output, estimator)
        X = check_samples(X, getattr(estimator, "input_shape", None))
        device = next(iter(estimator.parameters()), torch.empty(0)).device
        predicted = []
        with torch.no_grad(), evaluation_mode(estimator):
            for start in range(0, len(X), batch_size):
                # a copy: the module may work in place on its input, and X is the caller's
                x = torch.tensor(X[start:start + batch_size], device=device)
                scores = estimator(x)
                logits = class_logits(scores, kind, len(x))
                # argmax: (n, q) probabilities do as well as logits, one score does not
                check_scores(scores, kind, guessed, offset=start, for_gradients=False)
                predicted.append(logits.argmax(1).cpu())
        return torch.cat(predicted).numpy(), np.arange(logits.shape[1])
    if not hasattr(estimator, "predict"):
        raise TypeError(f"{type(estimator).__name__} has no predict method: pass a fitted "
                        "classifier, FrozenEstimator(classifier) or a torch module")
    predictions = np.asarray(estimator.predict(X))
    return predictions, np.asarray(getattr(estimator, "classes_", np.unique(predictions)))


def _rows(X, rows):
    """Rows of X by position, whatever holds them (a DataFrame's [] selects columns)."""
    if hasattr(X, "iloc"):
        return X.iloc[rows]
    if isinstance(X, (np.ndarray, torch.Tensor)):
        return X[rows]
    return np.asarray(X)[rows]


def correctness_target(estimator, X, y, *, output="auto"):
    """1 where the network's prediction equals ``y``, 0 where it is wrong or OoD.

    Rows whose label is -1 are out of distribution ("known unknowns"): their target
    is 0 whatever the network predicts (they are not even predicted).

    Parameters
    ----------
    estimator : fitted classifier, FrozenEstimator, or torch.nn.Module returning logits
    X : array-like of inputs the network takes
    y : array-like of shape (n_samples,)
        True labels, or -1 for out-of-distribution rows.
    output : {"auto", "logits", "probabilities", "log_probabilities"}, default="auto"
        What a torch module returns, as in :class:`GradientMetricTransformer`; it
        matters only for one score per sample (a two-class network): a logit predicts
        class 1 when positive, a probability when above 0.5, and "auto" refuses to
        guess which. Estimators with ``predict`` are asked for their predictions.

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
    resolve_output(output, None)   # a valid name, whatever the estimator
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
    X_inside = _rows(X, rows) if len(rows) < len(y) else X
    predictions, known = _predict(estimator, X_inside, output)
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

    When X and X_ood have different dtypes, both become float32 as the networks take
    them: uint8 images are scaled by 1/255 (0-255 -> [0, 1]); other integer dtypes are
    refused as ambiguous.

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
    if X.dtype != X_ood.dtype:
        # as everywhere in the package: uint8 images are 0-255, floats are [0, 1] or as
        # the network takes them; mixing them needs both on the float scale
        X, X_ood = as_float32_array(X, "X"), as_float32_array(X_ood, "X_ood")
    labels = np.full(len(X_ood), OUT_OF_DISTRIBUTION,
                     dtype=np.result_type(y.dtype, np.int64))
    return np.concatenate([X, X_ood]), np.concatenate([y, labels])
