"""From one machine to a cluster: gradient features of a dask array, block by block, and
grid searches whose network each worker receives once.

Needs the optional ``dask`` extra (``pip install ".[dask]"``). A fitted transformer (such as
:class:`~skgradunc.GradientMetricTransformer`) is applied to each block of samples on
whatever scheduler dask uses (threads, processes, or a ``dask.distributed`` cluster); the
transformer enters the task graph once, as one key, so a cluster sends it to each worker
once rather than with every block.

Under ``joblib.parallel_config(backend="dask")`` scikit-learn's searches send each task a
clone of the pipeline, and with it the network (a clone shares the fitted network, so every
task pickles it again). :func:`sent_once` scatters the network to every worker once and,
while its block runs, pickles it as a reference to the worker's copy.

Why not dask-ml's ``ParallelPostFit``: its ``transform`` maps blocks without saying that
the output drops the image axes, so the dask array it returns claims the input's 4-D shape
for a 2-D feature matrix.
"""

import copyreg
import pickle
from contextlib import contextmanager

import numpy as np
from sklearn.frozen import FrozenEstimator

__all__ = ["sent_once", "transform_blocks"]

INSTALL = 'pip install "skgradunc[dask]" (or, in a checkout, pip install ".[dask]")'


def _dask_array():
    try:
        import dask
        import dask.array
    except ImportError as exc:   # the optional extra is not installed
        raise ImportError(f"skgradunc.cluster needs dask: {INSTALL}") from exc
    return dask, dask.array


def _transform_block(block, transformer):
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
    X = X if isinstance(X, da.Array) else da.from_array(np.asarray(X), chunks=4096)
    if X.ndim < 2:
        raise ValueError(f"X must hold samples along its first axis and their values "
                         f"along the others (at least 2 dimensions), got shape "
                         f"{tuple(int(n) for n in X.shape)}")
    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    n_features = len(transformer.get_feature_names_out())
    # one graph key for the transformer: a cluster ships it once per worker
    shared = dask.delayed(transformer, pure=True)
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
    or a torch module) is scattered to every worker once and pickles as a reference to
    the worker's copy, a few hundred bytes. Outside it, pickling is as before: a fitted
    search saved after the block holds the network itself.

    Parameters
    ----------
    estimator : object
        The fitted network as the transformer holds it (the same object: clones of the
        transformer share it).
    client : distributed.Client or None, default=None
        The cluster's client; None: the current one (``distributed.get_client()``).

    Yields
    ------
    future : distributed.Future
        The workers' copy (kept alive until the block ends).

    Raises
    ------
    ImportError
        Without dask.distributed, saying how to install the extra.

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
    # in a holder: distributed's own serializer of a bare torch module rebuilds it with
    # plain dicts for its hooks, which register_forward_hook then cannot take
    future = client.scatter(_Held(estimator), broadcast=True, hash=False)
    kind = type(estimator)
    previous = copyreg.dispatch_table.get(kind)

    def reduce(obj):
        if obj is estimator:
            return _WorkersCopy, (future.key,)
        if previous is not None:
            return previous(obj)
        return obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)

    copyreg.dispatch_table[kind] = reduce
    _SENDING[future.key] = estimator
    try:
        yield future
    finally:
        _SENDING.pop(future.key, None)
        if previous is None:
            del copyreg.dispatch_table[kind]
        else:
            copyreg.dispatch_table[kind] = previous
        client.run(_forget_copy, future.key)     # the workers' lookups of it
        _forget_copy(future.key)
        future.release()


class _Held:
    """What :func:`sent_once` scatters: the estimator, pickled as it pickles anywhere."""

    def __init__(self, value):
        self.value = value


class _WorkersCopy(FrozenEstimator):
    """A worker's copy of what :func:`sent_once` scattered, looked up at first use (a
    task's arguments may be unpickled before the task runs, where no worker is current).
    Frozen: fitting is a no-op, a clone is itself."""

    def __init__(self, key):
        self.key = key

    def __reduce__(self):
        # a reference again, never the copy it may have looked up
        return _WorkersCopy, (self.key,)

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
        from .transformer import _is_fitted
        return _is_fitted(self.estimator)

    def __sklearn_tags__(self):
        from sklearn.base import BaseEstimator
        try:
            return super().__sklearn_tags__()
        except AttributeError:
            return BaseEstimator.__sklearn_tags__(self)

    def fit(self, X=None, y=None, *args, **kwargs):
        """No-op: the copy is fitted. Returns ``self``."""
        return self


_COPIES = {}          # key -> what a worker looked up, the last few (a worker process's)
_KEPT_COPIES = 4
# key -> the estimator itself, in the process that sends it, while its block runs: copyreg's
# reducers serve copy.deepcopy too, so a copy made here (sklearn's clone of a parameter,
# dask's handling of task arguments) is a reference as well, and must find the original
# here, never wait on the cluster (on the client's event loop that would wait forever)
_SENDING = {}


def _forget_copy(key):
    _COPIES.pop(key, None)


def _workers_copy(key):
    """What ``key`` holds, from this worker's memory (the broadcast copy, unless Dask's
    active memory manager has since dropped the replica: then fetched from another
    worker, with this worker's thread given back meanwhile) or from the cluster."""
    if key in _SENDING:
        return _SENDING[key]
    distributed = _distributed()
    if key in _COPIES:
        return _COPIES[key]
    try:
        worker = distributed.get_worker()
    except ValueError:   # not in a task (a reference unpickled in a client)
        worker = None
    try:
        if worker is not None and key in worker.data:
            value = worker.data[key].value
        elif worker is not None:
            with distributed.worker_client() as client:
                value = client.gather(distributed.Future(key, client=client)).value
        else:
            client = distributed.get_client()
            value = client.gather(distributed.Future(key, client=client)).value
    except AttributeError as exc:   # not to be read as a missing attribute of the copy
        raise RuntimeError(f"the network sent to the workers ({key}) could not be found: "
                           f"{exc}") from exc
    while len(_COPIES) >= _KEPT_COPIES:
        _COPIES.pop(next(iter(_COPIES)))
    _COPIES[key] = value
    return value
