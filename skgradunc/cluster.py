"""From one machine to a cluster: gradient features of a dask array, block by block, and
grid searches whose network each worker receives once.

Needs the optional ``dask`` extra (``pip install ".[dask]"``). A fitted transformer (such as
:class:`~skgradunc.GradientMetricTransformer`) is applied to each block of samples on
whatever scheduler dask uses (threads, processes, or a ``dask.distributed`` cluster); the
transformer enters the task graph once, as one key holding its pickle, so a cluster sends
it to each worker once rather than with every block.

Under ``joblib.parallel_config(backend="dask")`` scikit-learn's searches send each task a
clone of the pipeline, and with it the network (a clone shares the fitted network, so every
task pickles it again). :func:`sent_once` gives the network to every worker once, as a worker
plugin, and while its block runs pickles it as a reference to the worker's copy.

Why not dask-ml's ``ParallelPostFit``: its ``transform`` maps blocks without saying that
the output drops the image axes, so the dask array it returns claims the input's 4-D shape
for a 2-D feature matrix.
"""

import copy
import copyreg
import pickle
import sys
import threading
import uuid
import weakref
from contextlib import ExitStack, contextmanager, suppress

import numpy as np
import torch
from sklearn.frozen import FrozenEstimator

from ._data import is_dataset
from ._validation import refuse_containers
from ._network import is_fitted, network_lock

__all__ = ["sent_once", "transform_blocks"]

INSTALL = 'pip install "skgradunc[dask]" (or, in a checkout, pip install ".[dask]")'


def _dask_array():
    try:
        import dask
        import dask.array
    except ImportError as exc:   # the optional extra is not installed
        raise ImportError(f"skgradunc.cluster needs dask: {INSTALL}") from exc
    return dask, dask.array


class _Pickled:
    """A transformer as bytes, the form in which it enters the task graph. Workers pass
    the bytes to each other, never the object: pickling a network that a task is
    transforming with would copy the engine's hooks with it (seen: the other worker's
    copy then refused to run, "the network changed since fit"). In the process that made
    it, the object itself serves (dask's threads: no second copy of the network)."""

    __slots__ = ("data", "original", "__weakref__")

    def __init__(self, data, original=None):
        self.data = data
        self.original = original

    def __reduce__(self):
        return _Pickled, (self.data,)


def _pickled(transformer):
    """``transformer`` as a :class:`_Pickled`, pickled while no thread of this process
    computes with its networks (their hooks would be pickled too). cloudpickle, as dask
    uses: a network class defined in a script or notebook travels by value."""
    parts = [transformer]
    if hasattr(transformer, "get_params"):   # the steps of (nested) pipelines, unions, ...
        parts += list(transformer.get_params(deep=True).values())
    modules = {id(m): m for part in parts
               if isinstance(m := getattr(part, "module_", None), torch.nn.Module)}
    with ExitStack() as locks:
        for _, module in sorted(modules.items()):
            locks.enter_context(network_lock(module))
        return _Pickled(_cloudpickle().dumps(transformer), original=transformer)


# one unpickled transformer per _Pickled object a process holds: a worker's tasks share it
# (and its network lock), and it goes when dask lets the bytes go
_UNPICKLED = weakref.WeakKeyDictionary()
_UNPICKLED_GUARD = threading.Lock()


def _unpickled(pickled):
    if pickled.original is not None:
        return pickled.original
    with _UNPICKLED_GUARD:
        if pickled not in _UNPICKLED:
            _UNPICKLED[pickled] = pickle.loads(pickled.data)
        return _UNPICKLED[pickled]


def _transform_block(block, pickled):
    transformer = _unpickled(pickled)
    # an estimator set to pandas output gives a DataFrame: blocks must be arrays
    return np.asarray(transformer.transform(block), dtype=np.float64)


def transform_blocks(transformer, X):
    """Apply a fitted transformer to a dask array of samples, block by block.

    Parameters
    ----------
    transformer : fitted estimator with ``transform`` and ``get_feature_names_out``
        E.g. a fitted :class:`~skgradunc.GradientMetricTransformer`, or a fitted
        Pipeline ending in one.
    X : dask.array.Array or array-like of shape (n_samples, ...)
        The samples; a numpy array is wrapped as one dask array of blocks of up to
        4096 samples. Blocks are along the first axis only (other axes are rechunked
        to one chunk, so that every block holds whole samples).

    Returns
    -------
    features : dask.array.Array of float64, shape (n_samples, n_features_out)
        Lazy: ``.compute()`` (or ``dask.compute``) runs the blocks on the current
        scheduler; the values are those of ``transformer.transform(X)`` on the
        whole array.

    Raises
    ------
    ImportError
        Without dask, saying how to install the extra.
    ValueError
        When ``X`` has fewer than two dimensions.
    TypeError
        When ``X`` is a torch Dataset or DataLoader (``transform`` reads those) or no
        array of numbers.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skgradunc import GradientMetricTransformer
    >>> from skgradunc.cluster import transform_blocks
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    >>> X = np.random.RandomState(0).rand(10, 4).astype(np.float32)
    >>> grad = GradientMetricTransformer(net, device="cpu").fit(X)
    >>> features = transform_blocks(grad, X)
    >>> features.shape == grad.transform(X).shape
    True
    >>> np.allclose(features.compute(), grad.transform(X))
    True
    """
    dask, da = _dask_array()
    if is_dataset(X):
        raise TypeError(
            f"transform_blocks splits an array into blocks for dask; X is a "
            f"{type(X).__name__}, which transformer.transform(X) reads block by block itself "
            "(in this process), or make it a dask array (dask.array.from_array of the stacked "
            "samples, or of a memmap)")
    if not isinstance(X, da.Array):
        refuse_containers(X)   # an iterator, a list of items: named, not numpy's words
        X = da.from_array(np.asarray(X), chunks=4096)
    if X.ndim < 2:
        raise ValueError(f"X must hold samples along its first axis and their values "
                         f"along the others (at least 2 dimensions), got shape "
                         f"{tuple(int(n) for n in X.shape)}")
    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    n_features = len(transformer.get_feature_names_out())
    # one graph key for the transformer: a cluster ships it once per worker
    shared = dask.delayed(_pickled(transformer), pure=True)
    return X.map_blocks(_transform_block, shared, dtype=np.float64,
                        drop_axis=list(range(2, X.ndim)),
                        chunks=(X.chunks[0], (n_features,)), meta=np.empty((0, 0)))


def _distributed():
    try:
        import distributed
    except ImportError as exc:   # the optional extra is not installed
        raise ImportError(f"skgradunc.cluster.sent_once needs dask.distributed: {INSTALL}") \
            from exc
    return distributed


@contextmanager
def sent_once(estimator, client=None):
    """Send a fitted network to every Dask worker once, for the tasks of the block.

    scikit-learn's searches under ``joblib.parallel_config(backend="dask")`` send every
    task its own clone of the pipeline; the clones share the fitted network, and each task
    would carry it again. Inside this block ``estimator`` (the object given to
    :class:`~skgradunc.GradientMetricTransformer`: a fitted net, ``FrozenEstimator(net)``
    or a torch module) is held by every worker, including workers that join during the
    block, and pickles as a reference to the worker's copy, a few hundred bytes. Outside
    it, pickling is as before: a fitted search saved after the block holds the network
    itself.

    Parameters
    ----------
    estimator : object
        The fitted network as the transformer holds it (the same object: clones of the
        transformer share it).
    client : distributed.Client or None, default=None
        The cluster's client; None: the current one (``distributed.get_client()``).

    Yields
    ------
    key : str
        What the network pickles as inside the block (the name of the worker plugin that
        holds it).

    Raises
    ------
    ImportError
        Without dask.distributed, saying how to install the extra.
    ValueError
        When ``estimator`` is not fitted, with no client given and none current, with an
        asynchronous client, or when ``estimator`` is already being sent by an open block
        (one block serves any number of searches).

    Notes
    -----
    The reference applies to pickles made in this process, from any thread, while the
    block is open; ``copy.deepcopy`` still makes real copies.

    Examples
    --------
    >>> import joblib, torch
    >>> from distributed import Client, LocalCluster
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.pipeline import make_pipeline
    >>> import skgradunc as sgu
    >>> from skgradunc.cluster import sent_once
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    >>> pipe = make_pipeline(sgu.GradientMetricTransformer(net, device="cpu"),
    ...                      sgu.MetaClassifier("lasso"))
    >>> search = GridSearchCV(pipe, {"metaclassifier__C": [0.1, 1.0]}, cv=3)
    >>> with LocalCluster(n_workers=2, processes=True) as cluster, \\
    ...         Client(cluster) as client:  # doctest: +SKIP
    ...     with joblib.parallel_config(backend="dask"), sent_once(net, client):
    ...         search.fit(X, y_meta)
    """
    distributed = _distributed()
    client = distributed.get_client() if client is None else client
    if getattr(client, "asynchronous", False):
        raise ValueError("sent_once needs a synchronous distributed.Client (its plugin is "
                         "registered and unregistered by blocking calls)")
    if not is_fitted(estimator):
        # a copy on the workers is frozen: an unfitted net would not be trained there
        raise ValueError(f"sent_once sends a fitted network, but this "
                         f"{type(estimator).__name__} is not fitted: fit it first")
    key = f"skgradunc-sent-once-{uuid.uuid4().hex}"
    from ._worker_holder import Holder
    _start_sending(estimator, key)     # refuses a second block for it before anything is sent
    try:
        # pickled as if no block were open: a network may hold one that another block sends
        with _plain_pickling():
            payload = _cloudpickle().dumps(estimator)
        # a worker plugin: every worker, and any that joins later, holds it before it runs
        # a task, so a reference is a lookup in the worker's own memory (no data to fetch,
        # no replica for Dask's memory manager to drop)
        client.register_plugin(Holder(key, payload), name=key)
    except BaseException:
        _abandon(estimator, key, client)
        raise
    try:
        yield key
    except BaseException:
        _abandon(estimator, key, client)
        raise
    _stop_sending(estimator, key)
    client.unregister_worker_plugin(key)


def _abandon(estimator, key, client):
    """After a failure: forget the block and withdraw its plugin, quietly (the failure is
    the error to see). Also when registering failed: the scheduler keeps a plugin some
    worker could not set up, and would give it to every worker that joins later."""
    _stop_sending(estimator, key)
    with suppress(Exception):
        client.unregister_worker_plugin(key)


def _cloudpickle():
    import cloudpickle   # a dependency of dask: network classes of a script travel by value
    return cloudpickle


_PLAIN = threading.local()


@contextmanager
def _plain_pickling():
    """In this thread, pickle the networks being sent as themselves."""
    _PLAIN.active = True
    try:
        yield
    finally:
        _PLAIN.active = False


# id(estimator) -> (estimator, key) for the open blocks of this process; type -> the
# dispatch entry the type had before the first of them (None: none), restored when the
# last one closes
_SENT = {}
_PREVIOUS = {}
_SENT_GUARD = threading.Lock()
_COPIERS = (copy.copy.__code__, copy.deepcopy.__code__)


def _start_sending(estimator, key):
    kind = type(estimator)
    with _SENT_GUARD:
        if id(estimator) in _SENT:
            raise ValueError(f"this {kind.__name__} is already being sent by an open "
                             "sent_once block; run every search inside that one block")
        if kind not in _PREVIOUS:
            _PREVIOUS[kind] = copyreg.dispatch_table.get(kind)
            copyreg.dispatch_table[kind] = _reduce_sent
        _SENT[id(estimator)] = (estimator, key)


def _stop_sending(estimator, key):
    kind = type(estimator)
    with _SENT_GUARD:
        _SENT.pop(id(estimator), None)
        if not any(type(held) is kind for held, _ in _SENT.values()):
            previous = _PREVIOUS.pop(kind)
            if copyreg.dispatch_table.get(kind) is _reduce_sent:  # else: someone else's now
                if previous is None:
                    del copyreg.dispatch_table[kind]
                else:
                    copyreg.dispatch_table[kind] = previous


def _reduce_sent(obj):
    """copyreg's reducer for the types of the networks being sent: those networks pickle
    as their key, anything else as it would without it."""
    held = _SENT.get(id(obj))
    if held is not None and held[0] is obj and not getattr(_PLAIN, "active", False):
        # copy.copy and copy.deepcopy ask copyreg's reducers too: a copy stays a real copy
        # (code that copies a network to change the copy must not change the original)
        try:
            copying = sys._getframe(1).f_code in _COPIERS
        except ValueError:   # called with no Python frame above: not by the copy module
            copying = False
        if not copying:
            return _reference, (held[1],)
    previous = _PREVIOUS.get(type(obj))
    # a reducer installed over ours during an earlier block may chain back to ours: the
    # second call for the same object takes the default
    if previous is not None and getattr(_IN_PREVIOUS, "obj", None) is not obj:
        _IN_PREVIOUS.obj = obj
        try:
            return previous(obj)
        finally:
            _IN_PREVIOUS.obj = None
    return obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)


_IN_PREVIOUS = threading.local()


def _reference(key):
    """What a pickled reference to a network sent by :func:`sent_once` unpickles as: the
    original in the process that sent it while its block runs (the results of tasks, an
    in-process scheduler's copy of the graph), a lazy copy elsewhere."""
    for estimator, sent_key in list(_SENT.values()):
        if sent_key == key:
            return estimator
    return _WorkersCopy(key)


def _workers_copy(key):
    """The estimator that ``key`` stands for on this worker (a lazy copy exists only where
    the block's original is not: :func:`_reference`)."""
    try:
        from ._worker_holder import held
    except ImportError:   # no dask here, so no worker either
        held = None
    found = None if held is None else held(key)
    if found is None:
        raise RuntimeError(
            f"a network sent to Dask's workers by skgradunc.cluster.sent_once ({key}) is "
            f"not held in this process: a pickle made inside a sent_once block is loaded "
            f"only by that block's workers while it runs (pickle the estimator after the "
            f"block to keep the network)")
    return found


class _WorkersCopy(FrozenEstimator):
    """A reference to what :func:`sent_once` sent, looked up at first use (the scheduler
    also unpickles a task's arguments, and holds no copy). Frozen: fitting is a no-op, a
    clone is itself."""

    def __init__(self, key):
        self.key = key

    def __reduce__(self):
        # a reference again, never the copy it may have looked up (a fitted pipeline
        # returned by a task comes back as the sender's original)
        return _reference, (self.key,)

    @property
    def estimator(self):
        found = self.__dict__.get("_estimator")
        if found is None:
            found = self.__dict__["_estimator"] = _workers_copy(self.key)
        return found

    @estimator.setter
    def estimator(self, value):
        self.__dict__["_estimator"] = value

    # what was sent may be a torch module, which scikit-learn's tags and fitted check
    # do not know: the transformer's own check decides, as for the module itself
    def __sklearn_is_fitted__(self):
        return is_fitted(self.estimator)

    def __sklearn_tags__(self):
        from sklearn.base import BaseEstimator
        try:
            return super().__sklearn_tags__()
        except AttributeError:
            return BaseEstimator.__sklearn_tags__(self)

    def fit(self, X=None, y=None, *args, **kwargs):
        """No-op: the copy is fitted. Returns ``self``."""
        return self
