"""The meta target: was the network's prediction correct?"""

from contextlib import nullcontext

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, IterableDataset

from ._data import Relabelled, as_samples, is_dataset, item_array, item_of, value_scale
from ._network import sample_shape
from ._outputs import check_scores, class_logits, resolve_output
from ._validation import as_float32_array, refuse_containers
from ._network import evaluation_mode

__all__ = ["correctness_target", "append_out_of_distribution", "OUT_OF_DISTRIBUTION"]

OUT_OF_DISTRIBUTION = -1


def _input_shape(estimator):
    """The shape of one sample of the estimator's network, None if unknown."""
    module = estimator if isinstance(estimator, torch.nn.Module) else None
    return sample_shape(estimator, module)


def _predict(estimator, samples, output, labels, batch_size=1024):
    """(predicted classes, the labels the network knows, labels read from the items or
    None), block by block."""
    predicted, read = [], []
    module = estimator if isinstance(estimator, torch.nn.Module) else None
    if module is not None:
        kind, guessed = resolve_output(output, module)
        device = next(iter(module.parameters()), torch.empty(0)).device
    elif not hasattr(estimator, "predict"):
        raise TypeError(f"{type(estimator).__name__} has no predict method: pass a fitted "
                        "classifier, FrozenEstimator(classifier) or a torch module")
    known = None
    with torch.no_grad(), (evaluation_mode(module) if module is not None else nullcontext()):
        for start, x, y in samples.blocks(batch_size, labels=labels):
            if module is None:
                predicted.append(np.asarray(estimator.predict(x.cpu().numpy())))
            else:
                # a copy: the module may work in place on its input, and X is the caller's
                scores = module(x.to(device, copy=True))
                logits = class_logits(scores, kind, len(x))
                # argmax: (n, q) probabilities do as well as logits, one score does not
                check_scores(scores, kind, guessed, offset=start, for_gradients=False)
                predicted.append(logits.argmax(1).cpu().numpy())
                known = np.arange(logits.shape[1])
            read.append(y)
    predictions = np.concatenate(predicted)
    if known is None:
        known = np.asarray(getattr(estimator, "classes_", np.unique(predictions)))
    return predictions, known, (np.concatenate(read) if labels else None)


def _rows(X, rows):
    """Rows of X by position, whatever holds them (a DataFrame's [] selects columns)."""
    if hasattr(X, "iloc"):
        return X.iloc[rows]
    if isinstance(X, (np.ndarray, torch.Tensor)):
        return X[rows]
    return np.asarray(X)[rows]


def _in_memory(X):
    """Inputs predicted as they are (an estimator's predict may want its DataFrame)."""
    return not (is_dataset(X) or isinstance(X, np.memmap))


def _predict_in_memory(estimator, X, output):
    """(predictions, known labels) for X held in memory: a module's argmax block by
    block; an estimator's own predict on X as given."""
    if isinstance(estimator, torch.nn.Module) or not hasattr(estimator, "predict"):
        samples = as_samples(X, _input_shape(estimator))
        return _predict(estimator, samples, output, labels=False)[:2]
    predictions = np.asarray(estimator.predict(X))
    return predictions, np.asarray(getattr(estimator, "classes_", np.unique(predictions)))


def _check_labels(y, n_samples):
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D labels, got shape {y.shape}")
    if n_samples is not None and len(y) != n_samples:
        raise ValueError(f"y has {len(y)} labels but X has {n_samples} samples")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"y contains NaN or infinity (first: sample "
                         f"{int(np.flatnonzero(~np.isfinite(y))[0])})")
    return y


def correctness_target(estimator, X, y=None, *, output="auto"):
    """1 where the network's prediction equals ``y``, 0 where it is wrong or OoD.

    Rows whose label is -1 are out of distribution ("known unknowns"): their target
    is 0 whatever the network predicts.

    Parameters
    ----------
    estimator : fitted classifier, FrozenEstimator, or torch.nn.Module returning logits
        The network whose predictions are judged: an estimator's ``predict`` is
        called, a torch module's argmax of its outputs taken (in evaluation mode,
        without gradients).
    X : array-like, tensor, Dataset, SliceDataset or DataLoader
        Inputs the network takes, in any form
        :meth:`GradientMetricTransformer.transform` reads, streamed block by block
        (a memmap or a dataset is never read whole).
    y : array-like of shape (n_samples,), optional
        True labels, or -1 for out-of-distribution rows. None: read from X's items
        ``(x, y, ...)`` (a Dataset, a ``SliceDataset`` of one, a DataLoader), in the
        same pass as the predictions.
    output : {"auto", "logits", "probabilities", "log_probabilities"}, default="auto"
        What a torch module returns, as in :class:`GradientMetricTransformer`; it
        matters only for one score per sample (a two-class network): a logit predicts
        class 1 when positive, a probability when above 0.5, and "auto" refuses to
        guess which. Estimators with ``predict`` are asked for their predictions.

    Returns
    -------
    y_correct : ndarray of int64, shape (n_samples,)
        1 where the prediction equals the label, 0 where it does not or the label is
        -1 (out of distribution).

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
    >>> from torch.utils.data import TensorDataset  # labels read from (x, y) items
    >>> correctness_target(net, TensorDataset(torch.from_numpy(X), torch.tensor([0, 1, -1])))
    array([1, 1, 0])
    """
    resolve_output(output, None)   # a valid name, whatever the estimator
    refuse_containers(X, datasets=True)    # an iterator, a list of items: named
    if y is None:
        samples = as_samples(X, _input_shape(estimator))
        predictions, known, y = _predict(estimator, samples, output, labels=True)
        y = _check_labels(y, None)
        inside = y != OUT_OF_DISTRIBUTION
        predictions = predictions[inside]
    elif _in_memory(X):
        y = _check_labels(y, len(X))
        inside = y != OUT_OF_DISTRIBUTION
        if not inside.any():
            return np.zeros(len(y), dtype=np.int64)
        # only the in-distribution rows are predicted, by an estimator's predict on X as
        # it is given (its DataFrame, its dtypes)
        X_inside = X if inside.all() else _rows(X, np.flatnonzero(inside))
        predictions, known = _predict_in_memory(estimator, X_inside, output)
    else:   # streamed: every row predicted (never a copy of the rest), the OoD ones dropped
        samples = as_samples(X, _input_shape(estimator))
        y = _check_labels(y, samples.n)
        inside = y != OUT_OF_DISTRIBUTION
        if not inside.any():
            return np.zeros(len(y), dtype=np.int64)
        predictions, known, _ = _predict(estimator, samples, output, labels=False)
        if len(predictions) != len(y):   # an iterable's length is known only now
            raise ValueError(f"y has {len(y)} labels but X has {len(predictions)} samples")
        predictions = predictions[inside]
    target = np.zeros(len(y), dtype=np.int64)
    unknown = np.setdiff1d(np.unique(y[inside]), known)
    if len(unknown):
        first = int(np.flatnonzero(np.isin(y, unknown))[0])
        raise ValueError(
            f"y has labels the network does not know: {unknown[:10].tolist()} (known: "
            f"{known[:20].tolist()}; first: sample {first}); mark out-of-distribution rows "
            "with -1")
    target[inside] = predictions == y[inside]
    return target


def append_out_of_distribution(X, y, X_ood):
    """Append out-of-distribution inputs labelled -1 ("known unknowns").

    ``correctness_target(net, *append_out_of_distribution(X, y, X_ood))`` then gives
    the meta target with the OoD rows as 0, as in section 5 of the paper.

    When X and X_ood have different dtypes, both become float32 as the networks take
    them: uint8 images are scaled by 1/255 (0-255 -> [0, 1]); other integer dtypes are
    refused as ambiguous.

    Parameters
    ----------
    X : array-like, tensor, Dataset or SliceDataset
        In-distribution samples.
    y : array-like of shape (n_samples,) or None
        Their labels; None when X is a dataset whose items ``(x, y)`` carry them.
    X_ood : array-like, tensor, Dataset or SliceDataset
        Out-of-distribution samples, of the same shape.

    Returns
    -------
    X_all : ndarray, or torch ConcatDataset when X or X_ood is a dataset
        X followed by X_ood. From datasets nothing is read but the first samples: the
        result's items are ``(x, label)``, the OoD ones labelled -1, read when needed
        (wrap it in skorch's ``SliceDataset`` for scikit-learn's splitters).
    y_all : ndarray, y followed by -1 for every row of X_ood; None when y is None
        (the labels are then the items' own, as :func:`correctness_target` reads them)

    Examples
    --------
    >>> import numpy as np
    >>> from skgradunc import append_out_of_distribution
    >>> X_all, y_all = append_out_of_distribution(np.zeros((2, 3)), [4, 7], np.ones((1, 3)))
    >>> X_all.shape, y_all.tolist()
    ((3, 3), [4, 7, -1])
    """
    if is_dataset(X) or is_dataset(X_ood):
        return _append_datasets(X, y, X_ood)
    if y is None:
        raise ValueError("y is None, but X is an array, which carries no labels: pass y")
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


def _append_datasets(X, y, X_ood):
    """append_out_of_distribution for datasets: a lazy ConcatDataset of (x, label)."""
    first, parts = {}, {}
    for name, data in (("X", X), ("X_ood", X_ood)):
        if isinstance(data, (DataLoader, IterableDataset)):
            raise TypeError(f"{name} is a {type(data).__name__}; append_out_of_distribution "
                            "needs indexable samples: an array, a tensor, a Dataset or a "
                            "SliceDataset")
        if not (is_dataset(data) or isinstance(data, (np.ndarray, torch.Tensor))):
            data = np.asarray(data)   # a DataFrame's [i] would be a column
        if len(data) == 0:
            raise ValueError(f"{name} is empty: it holds no samples")
        parts[name] = data
        first[name] = item_of(data, 0, name)
    x, x_ood = (item_array(first[name][0], 0, name) for name in ("X", "X_ood"))
    if x.shape != x_ood.shape:
        raise ValueError(f"X_ood has samples of shape {x_ood.shape}, X has {x.shape}")
    if y is None and first["X"][1] is None:
        raise ValueError("y is None, but X's items carry no labels (they are x, not "
                         "(x, y)): pass y")
    if y is not None:
        y = _check_labels(y, len(X))
    # mixed dtypes: both on the float scale, as for arrays
    as_float = value_scale(x.dtype) != value_scale(x_ood.dtype)
    X_all = ConcatDataset([Relabelled(parts["X"], y, as_float),
                           Relabelled(parts["X_ood"], OUT_OF_DISTRIBUTION, as_float)])
    if y is None:
        return X_all, None
    labels = np.full(len(X_ood), OUT_OF_DISTRIBUTION, dtype=np.result_type(y.dtype, np.int64))
    return X_all, np.concatenate([y, labels])
