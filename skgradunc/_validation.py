"""Input checks shared by every estimator: images in, clear errors out."""

import collections.abc
import math
import numbers

import numpy as np
import scipy.sparse
import torch

__all__ = ["SAMPLE_CONTAINERS", "refuse_containers", "check_images", "image_layout",
           "check_labels", "encode_labels", "check_samples", "sample_layout", "check_finite",
           "as_float32_array", "is_int", "is_finite_real", "check_number", "check_positive_int",
           "check_non_negative_int", "check_positive_real", "check_fraction"]


def check_images(X, input_shape=None, name="X"):
    """Return ``X`` as a C-contiguous float32 array of shape (n, C, H, W).

    Conversions (documented in the user guide):

    * ``uint8`` images are scaled by 1/255 into [0, 1] (as torchvision's
      ``ToTensor`` does); other integer or boolean dtypes are refused because
      their value range is ambiguous.
    * floating dtypes (float16/64) are cast to float32.
    * ``(n, H, W)`` gains a channel axis: ``(n, 1, H, W)``.
    * ``(n, features)`` is reshaped to ``input_shape`` when that is known.

    Parameters
    ----------
    X : array-like or torch.Tensor
    input_shape : tuple of int, optional
        Expected ``(C, H, W)``; when given, any other shape is an error.
    name : str
        Name used in error messages.
    """
    X = image_layout(as_float32_array(X, name), input_shape, name)
    return np.ascontiguousarray(check_finite(X, name))


def image_layout(X, input_shape=None, name="X"):
    """:func:`check_images`' shape rules alone, for a numpy array or a tensor of samples."""
    if X.ndim == 3:
        X = X[:, None]
    elif X.ndim == 2:
        if input_shape is None:
            raise ValueError(
                f"{name} is 2-D {tuple(X.shape)} but the image shape is unknown; pass images "
                "as (n, channels, height, width) or set the module's in_channels/image_size")
        if X.shape[1] != int(np.prod(input_shape)):
            raise ValueError(
                f"{name} has {X.shape[1]} features per row, the network expects images of "
                f"shape {tuple(input_shape)} = {int(np.prod(input_shape))} values")
        X = X.reshape(len(X), *input_shape)
    elif X.ndim != 4:
        raise ValueError(
            f"{name} must be 4-D (n, channels, height, width), 3-D (n, height, width) or "
            f"2-D (n, features); got {X.ndim}-D shape {tuple(X.shape)}")
    if input_shape is not None and tuple(X.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"{name} has images of shape {tuple(X.shape[1:])} (channels, height, width); "
            f"the network expects {tuple(input_shape)}")
    return X


def as_float32_array(X, name="X"):
    """X as a float32 numpy array; uint8 scaled by 1/255; empty input refused."""
    if scipy.sparse.issparse(X):
        raise TypeError(f"sparse input is not supported: {name} is a sparse matrix; pass a "
                        "dense array (X.toarray())")
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu()
        X = (X.float() if X.dtype == torch.bfloat16 else X).numpy()  # numpy has no bfloat16
    refuse_containers(X, name)
    try:
        X = np.asarray(X)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc
    if X.dtype == np.uint8:
        X = X.astype(np.float32) / np.float32(255)
    elif X.dtype.kind == "f":
        X = X.astype(np.float32, copy=False)
    else:
        raise TypeError(
            f"{name} must hold float values (or uint8 images in 0-255), got dtype {X.dtype}; "
            "cast it explicitly (e.g. X.astype(np.float32))")
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError(f"{name} is empty: found array with 0 sample(s) (shape={X.shape}) "
                         "while a minimum of 1 is required.")
    if X.size == 0:
        raise ValueError(f"{name} is empty: found array with 0 feature(s) (shape={X.shape}) "
                         "while a minimum of 1 is required.")
    return X


SAMPLE_CONTAINERS = ("a numpy array or memmap, a tensor, a torch Dataset or IterableDataset, "
                     "skorch's SliceDataset or a DataLoader")


def refuse_containers(X, name="X", datasets=False):
    """Refuse, naming the container, an X that would become an array of objects: a
    DataLoader or Dataset where an array is needed (unless ``datasets``), an iterator
    (read once only), and the list of ``(x, y)`` items scikit-learn's splitters make of a
    torch Dataset."""
    from torch.utils.data import DataLoader, Dataset
    kind = type(X).__name__
    if datasets:
        pass
    elif isinstance(X, DataLoader):
        raise TypeError(f"{name} is a DataLoader, but an array or tensor of samples is needed "
                        "here; pass its dataset (loader.dataset) where a Dataset is taken, or "
                        "the stacked samples (np.concatenate of its batches' x)")
    elif isinstance(X, Dataset):
        raise TypeError(f"{name} is a torch {kind}, but an array or tensor of samples is "
                        "needed here; stack its samples (np.stack([x for x, *_ in dataset]))")
    if isinstance(X, collections.abc.Iterator):
        where = f"; {name} may be {SAMPLE_CONTAINERS}" if datasets else ""
        raise TypeError(f"{name} is a {kind}, which can be read only once{where}: make a list "
                        "or array of its samples, or an IterableDataset whose __iter__ starts "
                        "a new pass where Datasets are taken")
    if (isinstance(X, (list, tuple)) and len(X) and isinstance(X[0], (tuple, list))
            and len(X[0]) >= 2 and isinstance(X[0][0], (torch.Tensor, np.ndarray))):
        raise TypeError(
            f"{name} is a {kind} of (x, y, ...) items: what scikit-learn's splitters "
            "(cross_val_score, GridSearchCV) make of a torch Dataset, which they index item "
            "by item; wrap the dataset in skorch.helper.SliceDataset(dataset), which they "
            "index into samples (its labels still come from the items)")


def check_finite(X, name="X", offset=None):
    """Refuse NaN or infinity in X (numpy array or tensor, first axis = samples), naming
    the first bad sample; ``offset``: X is a block of a larger input starting there."""
    finite = torch.isfinite(X) if isinstance(X, torch.Tensor) else np.isfinite(X)
    if bool(finite.all()):
        return X
    bad_rows = ~finite.reshape(len(X), -1).all(1)
    bad_rows = bad_rows.cpu().numpy() if isinstance(bad_rows, torch.Tensor) else bad_rows
    first, count = int(np.argmax(bad_rows)), int(bad_rows.sum())
    where = f"{len(X)} samples" if offset is None else \
        f"the {len(X)} samples from sample {offset} on"
    raise ValueError(f"{name} contains NaN or infinity in {count} of {where} (first: sample "
                     f"{(offset or 0) + first})")


def check_samples(X, sample_shape=None, name="X", owner="the network"):
    """Validate inputs of any layout (first axis = samples) for a torch module.

    Images (``sample_shape`` of length 3) go through :func:`check_images`;
    otherwise X must be at least 2-D, and when ``sample_shape`` is known each
    sample must have that shape.
    """
    X = sample_layout(as_float32_array(X, name), sample_shape, name, owner)
    return np.ascontiguousarray(check_finite(X, name))


def sample_layout(X, sample_shape=None, name="X", owner="the network"):
    """:func:`check_samples`' shape rules alone, for a numpy array or a tensor."""
    if sample_shape is not None and len(sample_shape) == 3:
        return image_layout(X, sample_shape, name=name)
    if X.ndim < 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features) or an image batch, got shape "
            f"{tuple(X.shape)}. Reshape your data: X.reshape(1, -1) for a single sample")
    if sample_shape is not None and tuple(X.shape[1:]) != tuple(sample_shape):
        if X.ndim == 2 and len(sample_shape) == 1:
            raise ValueError(f"{name} has {X.shape[1]} features, but {owner} is expecting "
                             f"{sample_shape[0]} features as input")
        raise ValueError(f"{name} has samples of shape {tuple(X.shape[1:])}, {owner} expects "
                         f"{tuple(sample_shape)}")
    return X


def check_labels(y, n_samples, n_classes=None, name="y"):
    """Return integer class labels 0..K-1 as int64, refusing anything else clearly."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels, got shape {y.shape}")
    if len(y) != n_samples:
        raise ValueError(f"{name} has {len(y)} labels but X has {n_samples} samples")
    if y.dtype.kind in "iu":
        labels = y.astype(np.int64)
    elif y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise ValueError(
                f"{name} must hold integer class labels 0..K-1; got non-integer floats "
                "(continuous targets are not class labels)")
        labels = y.astype(np.int64)
    else:
        raise TypeError(
            f"{name} must hold integer class labels 0..K-1, got dtype {y.dtype}; encode "
            "other labels first, e.g. with sklearn.preprocessing.LabelEncoder")
    if labels.min() < 0:
        raise ValueError(f"{name} has negative labels ({labels.min()}); need 0..K-1")
    if n_classes is not None and labels.max() >= n_classes:
        raise ValueError(
            f"{name} has label {labels.max()} but the network has only {n_classes} classes "
            f"(0..{n_classes - 1})")
    return labels


def encode_labels(y, n_samples, classes=None, name="y"):
    """(classes, y as int64 positions in them): scikit-learn's convention for classifiers
    whose outputs are the classes seen. ``classes``: the known classes, in output order
    (a fitted classifier's, or a ``classes`` parameter); None: the sorted labels of ``y``.
    Any labels (integers, strings, ...); integral floats as integers; refused: NaN,
    continuous targets, labels not among ``classes``, and a shape that is not one label
    per sample."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels, got shape {y.shape}")
    if len(y) != n_samples:
        raise ValueError(f"{name} has {len(y)} labels but X has {n_samples} samples")
    if y.dtype.kind == "c":
        raise TypeError(f"{name} must hold class labels, got complex dtype {y.dtype}")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise ValueError(f"{name} must hold class labels; got non-integer or non-finite "
                             "floats (continuous targets are not class labels)")
        y = y.astype(np.int64)
    try:
        seen = np.unique(y)
    except TypeError as exc:   # an object array mixing strings and numbers
        raise TypeError(f"{name} mixes label types that cannot be ordered ({exc}); give "
                        "labels of one type") from exc
    classes = seen if classes is None else np.asarray(classes)
    order = np.argsort(classes, kind="stable")
    positions = np.searchsorted(classes[order], y)
    found = (positions < len(classes))
    found[found] = classes[order][positions[found]] == y[found]
    if not found.all():
        unknown = np.unique(y[~found])
        raise ValueError(f"{name} has labels {unknown[:10].tolist()} that are not among the "
                         f"classes {classes[:20].tolist()}")
    return classes, order[positions].astype(np.int64)


# -- numbers: one check each, naming the setting, what it must be and the value given ----
def is_int(value):
    """An integer, not a bool (``True`` is no batch size)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(value)


def check_number(value, name, valid, expected, *, optional=False):
    """Raise ``ValueError("<name> must be <expected>, got <value>")`` unless
    ``valid(value)`` (or ``value`` is None, when ``optional``)."""
    if optional and value is None:
        return value
    if not valid(value):
        alternative = " or None (the data set's default)" if optional else ""
        raise ValueError(f"{name} must be {expected}{alternative}, got {value!r}")
    return value


def check_positive_int(value, name, *, optional=False):
    return check_number(value, name, lambda v: is_int(v) and v >= 1, "a positive integer",
                        optional=optional)


def check_non_negative_int(value, name):
    return check_number(value, name, lambda v: is_int(v) and v >= 0, "a non-negative integer")


def check_positive_real(value, name, *, optional=False):
    return check_number(value, name, lambda v: is_finite_real(v) and v > 0,
                        "a positive finite number", optional=optional)


def check_fraction(value, name):
    return check_number(value, name, lambda v: is_finite_real(v) and 0 < v < 1,
                        "a fraction between 0 and 1 (exclusive)")
