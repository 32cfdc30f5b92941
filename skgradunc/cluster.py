"""From one machine to a cluster: gradient features of a dask array, block by block.

Needs the optional ``dask`` extra (``pip install ".[dask]"``). A fitted transformer (such as
:class:`~skgradunc.GradientMetricTransformer`) is applied to each block of samples on
whatever scheduler dask uses (threads, processes, or a ``dask.distributed`` cluster); the
transformer enters the task graph once, as one key, so a cluster sends it to each worker
once rather than with every block.

Why not dask-ml's ``ParallelPostFit``: its ``transform`` maps blocks without saying that
the output drops the image axes, so the dask array it returns claims the input's 4-D shape
for a 2-D feature matrix.
"""

import numpy as np

__all__ = ["transform_blocks"]

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
