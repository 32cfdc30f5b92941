"""Samples of a torch Dataset, one item at a time: ``x`` or ``(x, y, ...)``, checked as
arrays of one shape and scale, labels read from the items, errors naming the sample."""

import numpy as np
import torch
from skorch.helper import SliceDataset
from torch.utils.data import Dataset

from ._validation import as_float32_array

__all__ = ["split_item", "item_of", "item_array", "value_scale", "Consistency", "labels_of",
           "batch_labels", "Relabelled"]


def split_item(item, index, name):
    """(x, y or None) of one dataset item: ``x`` or ``(x, y, ...)``, skorch's and
    PyTorch's convention."""
    if isinstance(item, (tuple, list)):
        if not item:
            raise ValueError(f"sample {index} of {name} is an empty {type(item).__name__}")
        return item[0], (item[1] if len(item) > 1 else None)
    if isinstance(item, dict):
        raise TypeError(
            f"sample {index} of {name} is a dict (keys {sorted(map(str, item))[:5]}); items "
            "must be x or (x, y, ...): return a tuple from the dataset's __getitem__")
    return item, None


def item_of(X, index, name="X"):
    """(x, y or None) of sample ``index`` of an indexable X (array, tensor, Dataset,
    SliceDataset: its label from the dataset's item)."""
    if isinstance(X, SliceDataset):
        if not _plain_slice_dataset(X):
            return _read(X, index, name), None   # its own indexing: x only
        item = _read(X.dataset, int(X.indices_[index]), name, index)
        x = X.transform(item[X.idx])
        label = split_item(item, index, name)[1] if X.idx == 0 else None
        return x, label
    if isinstance(X, Dataset):
        return split_item(_read(X, index, name), index, name)
    return X[index], None


def _plain_slice_dataset(X):
    """A SliceDataset that indexes as skorch's does (its dataset's items can be read
    whole, labels included); a subclass with its own indexing is read through it."""
    return all(getattr(type(X), m) is getattr(SliceDataset, m)
               for m in ("__getitem__", "_select_item"))


def _read(dataset, index, name, position=None):
    """dataset[index]; its error gets a note naming the sample (Python 3.11+)."""
    try:
        return dataset[index]
    except Exception as exc:
        if hasattr(exc, "add_note"):
            where = index if position is None else position
            exc.add_note(f"(skgradunc: while reading sample {where} of {name})")
        raise


def item_array(x, index, name):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("PIL."):
        raise TypeError(
            f"sample {index} of {name} is a PIL image; give the dataset a transform that "
            "makes tensors, e.g. torchvision.transforms.ToTensor()")
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"sample {index} of {name} is not numeric ({type(x).__name__}): "
                        f"{exc}") from exc
    if array.dtype.kind not in "biuf":
        raise TypeError(f"sample {index} of {name} is not numeric: {type(x).__name__} "
                        f"(dtype {array.dtype})")
    return array


def value_scale(dtype):
    """uint8 bytes or floats: what one data set must not mix."""
    return "uint8" if dtype == np.uint8 else "float" if dtype.kind == "f" else None


class Consistency:
    """Remembers the first sample's shape and dtype; refuses samples that differ."""

    def __init__(self, name):
        self.name, self.first = name, None

    def check(self, array, index, per_sample_shape=None):
        shape = array.shape if per_sample_shape is None else per_sample_shape
        if value_scale(array.dtype) is None:
            raise TypeError(
                f"sample {index} of {self.name} has dtype {array.dtype}; samples must hold "
                "float values or uint8 image bytes (0-255): cast them (e.g. in the dataset's "
                "transform)")
        if self.first is None:
            self.first = (index, shape, array.dtype)
            return
        first, first_shape, first_dtype = self.first
        if shape != first_shape:
            raise ValueError(
                f"sample {index} of {self.name} has shape {tuple(shape)}, sample {first} has "
                f"{tuple(first_shape)}: samples must all have one shape (resize them, e.g. in "
                "the dataset's transform)")
        if value_scale(array.dtype) != value_scale(first_dtype):
            raise TypeError(
                f"sample {index} of {self.name} is {array.dtype} but sample {first} is "
                f"{first_dtype}: uint8 bytes (0-255) and floats mixed in one data set are "
                "ambiguous; convert them to one (e.g. ToTensor() for all)")


def labels_of(values, start, name):
    """Labels read from the items, as an int64 array; None items are refused."""
    labels = []
    for offset, value in enumerate(values):
        if value is None:
            raise ValueError(
                f"{name}'s items carry no labels (sample {start + offset} is x, not (x, y)); "
                "pass y")
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if value.size != 1 or value.dtype.kind not in "iuf":
            raise TypeError(f"the label of sample {start + offset} of {name} is not one "
                            f"number: {value!r}")
        if value.dtype.kind == "f" and not (np.isfinite(value) and value == np.round(value)):
            raise ValueError(f"the label of sample {start + offset} of {name} is "
                             f"{value.item()!r}, not a class (an integer, or -1 for "
                             "out of distribution)")
        labels.append(value.reshape(()))
    return np.stack(labels) if labels else np.empty(0, dtype=np.int64)


def batch_labels(y, n, start, name):
    """A DataLoader batch's labels, one per sample."""
    if y is None:
        return labels_of([None], start, name)   # refused: no labels
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if y.shape == (n, 1):
        y = y[:, 0]
    if y.shape != (n,) or y.dtype.kind not in "iuf":
        raise TypeError(f"the labels of the batch from sample {start} of {name} are not "
                        f"{n} numbers (shape {y.shape}, dtype {y.dtype})")
    return labels_of(list(y), start, name)


class Relabelled(Dataset):
    """Items ``(x, label)`` of an indexable X (array, tensor, Dataset, SliceDataset):
    ``labels`` one per sample, a single value for all, or None to keep the items' own.
    ``as_float``: x becomes float32 (uint8 scaled by 1/255), for joining data sets of
    different dtypes (:func:`skgradunc.append_out_of_distribution`)."""

    def __init__(self, X, labels=None, as_float=False):
        self.X, self.labels, self.as_float = X, labels, as_float

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        x, y = item_of(self.X, index)
        x = item_array(x, index, "X")
        if self.as_float:
            x = as_float32_array(x[None])[0]
        if self.labels is not None:
            y = self.labels if np.ndim(self.labels) == 0 else self.labels[index]
        # one type for every item, whichever part it comes from, so that a DataLoader's
        # default collate can batch them: a tensor and an int
        x = torch.as_tensor(x if x.flags.writeable else x.copy())
        return x, (None if y is None else int(labels_of([y], index, "X")[0]))
