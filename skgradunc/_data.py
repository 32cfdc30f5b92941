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

import queue
import threading

import numpy as np
import torch
from skorch.helper import SliceDataset
from torch.utils.data import BatchSampler, DataLoader, Dataset, IterableDataset, SequentialSampler

from ._validation import as_float32_array, check_finite, refuse_containers, sample_layout

__all__ = ["as_samples", "is_dataset", "from_input", "item_of", "item_array", "value_scale",
           "Relabelled"]


def from_input(exc):
    """True for an error raised while reading or validating X (not by the network)."""
    return getattr(exc, "_skgradunc_input", False)


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


# -- items ----------------------------------------------------------------------------
def _split(item, index, name):
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
        label = _split(item, index, name)[1] if X.idx == 0 else None
        return x, label
    if isinstance(X, Dataset):
        return _split(_read(X, index, name), index, name)
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


class _Consistency:
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


def _labels(values, start, name):
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


def _batch_labels(y, n, start, name):
    """A DataLoader batch's labels, one per sample."""
    if y is None:
        return _labels([None], start, name)   # refused: no labels
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if y.shape == (n, 1):
        y = y[:, 0]
    if y.shape != (n,) or y.dtype.kind not in "iuf":
        raise TypeError(f"the labels of the batch from sample {start} of {name} are not "
                        f"{n} numbers (shape {y.shape}, dtype {y.dtype})")
    return _labels(list(y), start, name)


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
        return _marked(_read_ahead(checked) if read_ahead and self.on_host else checked)

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
        consistency = _Consistency(self.name)
        for start in range(0, self.n, size):
            xs, ys = [], []
            for index in range(start, min(start + size, self.n)):
                x, y = item_of(self.X, index, self.name)
                x = item_array(x, index, self.name)
                consistency.check(x, index)
                xs.append(x)
                ys.append(y)
            yield np.stack(xs), (_labels(ys, start, self.name) if labels else None)


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
        consistency = _Consistency(self.name)

        def items():
            for index, item in enumerate(self.X):
                x, y = _split(item, index, self.name)
                x = item_array(x, index, self.name)
                consistency.check(x, index)
                yield x[None], (_labels([y], index, self.name) if labels else None)
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
        consistency = _Consistency(self.name)

        def pieces():
            start = 0
            for batch in batches:
                _refuse_sample_lists(batch, start, self.name)
                x, y = _split(batch, start, self.name)
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
                yield x, (_batch_labels(y, len(x), start, self.name) if labels else None)
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


def _marked(blocks):
    """The blocks, errors marked as the input's (:func:`from_input`)."""
    try:
        yield from blocks
    except Exception as exc:
        try:
            exc._skgradunc_input = True
        except AttributeError:   # an exception type without __dict__
            pass
        raise


# -- reading ahead --------------------------------------------------------------------
_END = object()


def _read_ahead(blocks, depth=2):
    """Iterate ``blocks`` in a background thread, up to ``depth`` blocks ahead. The
    reader's errors are raised here, in the caller's thread; when the caller stops early
    (an error, Ctrl-C) the reader stops after its current block."""
    ready, stop = queue.Queue(maxsize=depth), threading.Event()

    def put(entry):
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read():
        try:
            for block in blocks:
                if not put((block, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            put((None, exc))
        finally:
            blocks.close()

    reader = threading.Thread(target=read, name="skgradunc-reader", daemon=True)
    reader.start()
    finished = False
    try:
        while True:
            block, error = ready.get()
            if error is not None:
                raise error
            if block is _END:
                finished = True
                return
            yield block
    finally:
        stop.set()
        # stopped early (an error, Ctrl-C): the reader ends after the read it is in,
        # which is not waited for long (a stalled file system must not hold Ctrl-C)
        reader.join(None if finished else 2.0)


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
        return x, (None if y is None else int(_labels([y], index, "X")[0]))
