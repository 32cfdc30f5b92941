"""Noise images: the paper's simplest out-of-distribution concept."""

import numpy as np
from sklearn.utils import check_random_state

from .._validation import check_positive_int, is_int

__all__ = ["make_noise"]


def make_noise(n_samples, *, kind="uniform", shape=(1, 28, 28), random_state=None):
    """Noise images: the paper's simplest out-of-distribution concept.

    Parameters
    ----------
    n_samples : int
        Number of images.
    kind : {"uniform", "normal"}, default="uniform"
        ``"uniform"``: independent pixels uniform in [0, 1] (the paper's
        uniform noise). ``"normal"``: pixels drawn from N(0.5, 0.25^2) and
        clipped to [0, 1] (the "normal noise" concept of the paper's Table 3).
    shape : tuple of int, default=(1, 28, 28)
        Shape of one image, e.g. ``X.shape[1:]``.
    random_state : int, RandomState or None, default=None
        Seeds the noise; None draws from numpy's global random state.

    Returns
    -------
    X : ndarray of float32, shape (n_samples,) + shape
        The noise images, values in [0, 1].

    Examples
    --------
    >>> from skgradunc.datasets import make_noise
    >>> make_noise(200, kind="uniform", random_state=0).shape
    (200, 1, 28, 28)
    """
    check_positive_int(n_samples, "n_samples")
    if kind not in ("uniform", "normal"):
        raise ValueError(f"kind must be 'uniform' or 'normal', got {kind!r}")
    shape = _check_shape(shape)
    rng = check_random_state(random_state)
    size = (int(n_samples), *shape)
    if kind == "uniform":
        X = rng.uniform(0.0, 1.0, size=size)
    else:
        X = np.clip(rng.normal(0.5, 0.25, size=size), 0.0, 1.0)
    return X.astype(np.float32)


def _check_shape(shape):
    """The shape of one image as a tuple of ints; a bare 28 or a float size is refused
    (28 alone does not say how many channels, and 28.5 pixels do not exist)."""
    sizes = tuple(shape) if isinstance(shape, (tuple, list)) else None
    if not sizes or not all(is_int(s) and s >= 1 for s in sizes):
        raise ValueError(f"shape must be a tuple of positive ints such as (1, 28, 28) "
                         f"(one image, e.g. X.shape[1:]), got {shape!r}")
    return tuple(int(s) for s in sizes)
