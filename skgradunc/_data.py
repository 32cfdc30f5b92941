"""One adapter for the samples X, whatever holds them, read block by block.

:func:`as_samples` picks the reader:

* a numpy array or ``np.memmap``, a CPU tensor: row blocks sliced from it (a memmap's
  pages are read as its blocks need them, never the whole file);
* a CUDA tensor: row blocks converted on its own device (no host round trip);
* a map-style torch ``Dataset`` whose items are ``x`` or ``(x, y, ...)``, and skorch's
  ``SliceDataset`` (read through its dataset, so the labels come along): items by index,
  stacked;
* a ``DataLoader`` or an ``IterableDataset``: iterated, batches or items re-cut into
  blocks of the size asked (so blocks, and features, are the same as for an array);
* anything else ``np.asarray`` takes (lists, DataFrames): converted, then as an array.

Every block is converted as the package converts samples everywhere (uint8 scaled by
1/255 into [0, 1], floats cast to float32, the shape rules of
:func:`~skgradunc._validation.sample_layout`) and checked for NaN or infinity, errors
naming the sample by its position in X: the same rows give the same float32 block
whatever held them. Host blocks are read in a background thread up to two blocks ahead,
so reading (disk, decoding, a dataset's transforms) overlaps with the computation.
"""

import numpy as np
import torch
from skorch.helper import SliceDataset
from torch.utils.data import BatchSampler, DataLoader, Dataset, IterableDataset, SequentialSampler

from ._items import (Consistency, Relabelled, batch_labels, item_array, item_of, labels_of,
                     split_item, value_scale)
from ._read_ahead import from_input, marked, read_in_background
from ._validation import as_float32_array, check_finite, refuse_containers, sample_layout

__all__ = ["as_samples", "is_dataset", "from_input", "item_of", "item_array", "value_scale",
           "Relabelled"]


def is_dataset(X):
    """True for torch Datasets, skorch SliceDatasets and DataLoaders (what skorch's fit
    and predict read as they are)."""
    return isinstance(X, (Dataset, SliceDataset, DataLoader))


def as_samples(X, sample_shape=None, *, name="X", owner="the network"):
    """The reader for X (see the module's docstring); ``sample_shape`` is the shape one
    sample must have (None: any, taken from the data)."""
    args = (sample_shape, name, owner)
    if isinstance(X, DataLoader):
        return _LoaderSamples(X, *args)
    if isinstance(X, IterableDataset):
        return _IterableSamples(X, *args)
    if isinstance(X, (Dataset, SliceDataset)):
        return _DatasetSamples(X, *args)
    if isinstance(X, torch.Tensor) and X.device.type != "cpu":
        return _DeviceTensorSamples(X, *args)
    if not isinstance(X, (np.ndarray, torch.Tensor)):
        refuse_containers(X, name, datasets=True)
        X = as_float32_array(X, name)   # a list, a DataFrame: in memory already
    return _ArraySamples(X, *args)


# -- readers --------------------------------------------------------------------------
class _Samples:
    """Samples of X read in blocks; ``n``: how many (None until read, for an iterable and
    a DataLoader); ``expected``: how many are expected (for a progress bar)."""

    n = None
    on_host = True        # blocks are made on the host (read ahead in a thread)
    in_memory = False     # cheap to check whole (fit does)

    def __init__(self, X, sample_shape, name, owner):
        self.X, self.sample_shape, self.name, self.owner = X, sample_shape, name, owner

    def _raw_blocks(self, size, labels):
        """Iterator of (x, y or None): ``size`` samples each (the last may be fewer), x as
        read (numpy array or tensor), y the labels read from the items when ``labels``."""
        raise NotImplementedError

    def _converted(self, x):
        return np.ascontiguousarray(as_float32_array(x, self.name))

    def _checked(self, raw):
        start = 0
        for x, y in raw:
            x = sample_layout(self._converted(x), self.sample_shape, self.name, self.owner)
            if self.sample_shape is None:
                self.sample_shape = tuple(x.shape[1:])  # later blocks must match the first
            # on the host in numpy, single-threaded: the reader thread does not compete
            # with the computation's threads
            check_finite(x, self.name, offset=start)
            if isinstance(x, np.ndarray):
                # a read-only memmap's float32 block is a view torch will not wrap quietly
                x = torch.from_numpy(x if x.flags.writeable else x.copy())
            yield start, x, y
            start += len(x)
        if start == 0:
            raise ValueError(f"{self.name} is empty: found 0 samples while a minimum of 1 "
                             "is required.")
        if self.n is not None and start != self.n:
            raise ValueError(f"{self.name} yielded {start} samples but its length is "
                             f"{self.n}")

    @property
    def expected(self):
        return self.n

    def blocks(self, size, *, labels=False, read_ahead=True):
        """Iterator of (start, x, y): float32 tensors of ``size`` samples (the last may be
        fewer), validated, with the labels read from the items when ``labels``."""
        checked = self._checked(self._raw_blocks(size, labels))
        # one block has nothing to overlap with: a thread would only cost its start
        ahead = read_ahead and self.on_host and (self.n is None or self.n > size)
        return marked(read_in_background(checked) if ahead else checked)

    def head(self, k=2):
        """The first ``k`` samples (fewer if X has fewer), validated."""
        blocks = self.blocks(k, read_ahead=False)
        try:
            return next(blocks)[1][:k]
        finally:
            blocks.close()

    def check_all(self, size=4096):
        """Read and validate every sample (for in-memory inputs, where that is cheap)."""
        for _ in self.blocks(size, read_ahead=False):
            pass


class _ArraySamples(_Samples):
    """Numpy arrays (memmaps included) and CPU tensors, sliced block by block."""

    def __init__(self, X, *args):
        super().__init__(X, *args)
        if X.ndim == 0:
            raise ValueError(f"{self.name} is a scalar, not samples: {X!r}")
        self.n = len(X)
        self.in_memory = not isinstance(X, np.memmap)

    def _raw_blocks(self, size, labels):
        if labels:
            raise ValueError(f"{self.name} is an array, which carries no labels: pass y")
        return ((self.X[start:start + size], None) for start in range(0, self.n, size))


class _DeviceTensorSamples(_ArraySamples):
    """A tensor on a GPU: blocks converted where it lives."""

    on_host = False

    def _converted(self, x):
        if x.dtype == torch.uint8:
            return x.float() / 255
        if not x.is_floating_point():
            raise TypeError(
                f"{self.name} must hold float values (or uint8 images in 0-255), got dtype "
                f"{x.dtype}; cast it explicitly (e.g. X.float())")
        return x.float()


class _DatasetSamples(_Samples):
    """A map-style Dataset or a SliceDataset: items by index, stacked into blocks."""

    def __init__(self, X, *args):
        super().__init__(X, *args)
        self.n = len(X)

    def _raw_blocks(self, size, labels):
        consistency = Consistency(self.name)
        for start in range(0, self.n, size):
            xs, ys = [], []
            for index in range(start, min(start + size, self.n)):
                x, y = item_of(self.X, index, self.name)
                x = item_array(x, index, self.name)
                consistency.check(x, index)
                xs.append(x)
                ys.append(y)
            yield np.stack(xs), (labels_of(ys, start, self.name) if labels else None)


def _join(parts):
    if parts[0] is None:
        return None
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _recut(pieces, size):
    """Re-cut an iterator of (x, y) pieces (arrays of any length; y None or labels)
    into blocks of ``size``: DataLoader batches or single items give the blocks an array
    gives. Each sample is copied once, whatever the pieces' sizes."""
    xs, ys, held = [], [], 0
    for x, y in pieces:
        xs.append(x)
        ys.append(y)
        held += len(x)
        while held >= size:
            block_x, block_y, wanted = [], [], size
            while wanted:
                x, y = xs[0], ys[0]
                if len(x) <= wanted:
                    block_x.append(x)
                    block_y.append(y)
                    del xs[0], ys[0]
                    wanted -= len(x)
                else:
                    block_x.append(x[:wanted])
                    block_y.append(None if y is None else y[:wanted])
                    xs[0], ys[0] = x[wanted:], None if y is None else y[wanted:]
                    wanted = 0
            held -= size
            yield _join(block_x), _join(block_y)
    if held:
        yield _join(xs), _join(ys)


def _refuse_one_shot(dataset, name):
    """An IterableDataset is read once by fit and again by transform: one whose
    ``iter()`` gives the same iterator each time would lose its first samples."""
    if iter(dataset) is iter(dataset):
        raise ValueError(
            f"the IterableDataset given as {name} returns the same iterator on every "
            "iter() (a generator stored once?), so a second pass would start where the "
            "first stopped; make __iter__ start a new pass each time")


class _IterableSamples(_Samples):
    """An IterableDataset: its items in iteration order (its length is not needed)."""

    def __init__(self, X, *args):
        super().__init__(X, *args)
        _refuse_one_shot(X, self.name)

    def _raw_blocks(self, size, labels):
        consistency = Consistency(self.name)

        def items():
            for index, item in enumerate(self.X):
                x, y = split_item(item, index, self.name)
                x = item_array(x, index, self.name)
                consistency.check(x, index)
                yield x[None], (labels_of([y], index, self.name) if labels else None)
        return _recut(items(), size)


class _LoaderSamples(_Samples):
    """A DataLoader: its batches ``x`` or ``(x, y, ...)``, re-cut into blocks. Only a
    loader whose order is X's order is read: batches of a sequential sampler, in order
    (or an IterableDataset's own order, from one process); anything else would give rows
    that match neither X nor labels read in another pass."""

    def __init__(self, X, *args):
        super().__init__(X, *args)
        batches = X.batch_sampler
        if batches is None:
            raise ValueError(
                f"the DataLoader given as {self.name} has batch_size=None (it yields single "
                "samples, not batches); give it a batch size, or pass its dataset")
        if isinstance(X.dataset, IterableDataset):
            _refuse_one_shot(X.dataset, self.name)
            if X.num_workers > 1:
                raise ValueError(
                    f"the DataLoader given as {self.name} reads an IterableDataset with "
                    f"{X.num_workers} workers: their samples interleave in an order that "
                    "depends on how the dataset shards itself; use num_workers <= 1")
        else:
            sampler = getattr(batches, "sampler", None)
            if not (type(batches) is BatchSampler and type(sampler) is SequentialSampler):
                what = type(sampler if type(batches) is BatchSampler else batches).__name__
                raise ValueError(
                    f"the DataLoader given as {self.name} draws its samples with {what}, so "
                    "the rows of the result would not follow its dataset's order (and "
                    "labels read in another pass would not match them); pass one made "
                    "with shuffle=False and no sampler, or select the samples with "
                    "torch.utils.data.Subset")
        if getattr(X, "in_order", True) is False:
            raise ValueError(
                f"the DataLoader given as {self.name} has in_order=False: its workers' "
                "batches come in the order they finish; pass one with in_order=True")
        # n stays unknown: a collate_fn may drop samples (broken images); the dataset's
        # length is what a progress bar expects
        self._expected = None
        if not isinstance(X.dataset, IterableDataset) and not batches.drop_last:
            self._expected = len(X.dataset)

    @property
    def expected(self):
        return self._expected

    def _raw_blocks(self, size, labels):
        batches = iter(self.X)  # here, not in the reader thread: worker processes start now
        consistency = Consistency(self.name)

        def pieces():
            start = 0
            for batch in batches:
                _refuse_sample_lists(batch, start, self.name)
                x, y = split_item(batch, start, self.name)
                x = item_array(x, start, self.name)
                if x.ndim == 0:
                    raise ValueError(f"the DataLoader given as {self.name} yields scalars, "
                                     "not batches of samples")
                if y is not None and len(y) != len(x):
                    raise ValueError(
                        f"the batch from sample {start} of the DataLoader given as "
                        f"{self.name} holds {len(x)} samples but {len(y)} labels: batches "
                        "must be x or (x, y, ...), stacked")
                consistency.check(x, start, x.shape[1:])
                yield x, (batch_labels(y, len(x), start, self.name) if labels else None)
                start += len(x)
        return _recut(pieces(), size)


def _refuse_sample_lists(batch, start, name):
    """A batch that is a list of samples or items (``collate_fn=list``) looks like (x, y,
    ...): its elements all have one shape, which an (x, y) batch's never have, or are
    items themselves (an (x, y) batch's x is an array)."""
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], (tuple, list,
                                                                            dict)):
        raise ValueError(
            f"the batch from sample {start} of the DataLoader given as {name} is a "
            f"{type(batch).__name__} of {len(batch)} {type(batch[0]).__name__}s: items not "
            "collated (a collate_fn returning a list?); batches must be x or (x, y, ...) "
            "with x stacked, as the default collate_fn makes them")
    if isinstance(batch, (list, tuple)) and len(batch) > 1 and all(
            isinstance(e, (torch.Tensor, np.ndarray)) and e.ndim >= 1
            and tuple(e.shape) == tuple(batch[0].shape) for e in batch):
        raise ValueError(
            f"the batch from sample {start} of the DataLoader given as {name} is a "
            f"{type(batch).__name__} of {len(batch)} arrays of one shape "
            f"{tuple(batch[0].shape)}: samples not stacked (a collate_fn returning a "
            "list?); batches must be x or (x, y, ...) with x stacked")
