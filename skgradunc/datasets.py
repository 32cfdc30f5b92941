"""Data sets: the embedded default and synthetic out-of-distribution noise.

Nothing here downloads anything.
"""

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.utils import Bunch, check_random_state

__all__ = ["load_digits28", "make_noise"]


def load_digits28(*, return_X_y=False, image_size=28):
    """scikit-learn's bundled handwritten digits, resampled to 1x28x28.

    The 1,797 8x8 digits of :func:`sklearn.datasets.load_digits` (values
    0-16) are scaled to [0, 1] and upsampled bilinearly to ``image_size``, so
    they have the shape and range of MNIST/EMNIST and the paper's CNN applies
    unchanged. This is the package's embedded default data set: it ships with
    scikit-learn and needs no download.

    Parameters
    ----------
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.
    image_size : int, default=28
        Height and width of the resampled images.

    Returns
    -------
    data : Bunch with ``data`` float32 (1797, 1, image_size, image_size) in
        [0, 1], ``target`` int64 (1797,), ``target_names`` and ``DESCR``;
        or ``(X, y)`` when ``return_X_y`` is True.

    Examples
    --------
    >>> from skgradunc.datasets import load_digits28
    >>> X, y = load_digits28(return_X_y=True)
    >>> X.shape, X.dtype, float(X.min()), float(X.max())
    ((1797, 1, 28, 28), dtype('float32'), 0.0, 1.0)
    """
    if not isinstance(image_size, numbers.Integral) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}")
    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    images = F.interpolate(small, size=(image_size, image_size), mode="bilinear",
                           align_corners=False)
    X = images.clamp_(0.0, 1.0).numpy()
    y = digits.target.astype(np.int64)
    if return_X_y:
        return X, y
    return Bunch(
        data=X, target=y, target_names=np.arange(10),
        DESCR=("scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), scaled "
               f"to [0, 1] and bilinearly upsampled to 1x{image_size}x{image_size} float32."))


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

    Returns
    -------
    X : ndarray of float32, shape (n_samples, *shape)

    Examples
    --------
    >>> from skgradunc.datasets import make_noise
    >>> make_noise(200, kind="uniform", random_state=0).shape
    (200, 1, 28, 28)
    """
    if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"shape must be a non-empty tuple of positive sizes, got {shape}")
    rng = check_random_state(random_state)
    size = (int(n_samples), *shape)
    if kind == "uniform":
        X = rng.uniform(0.0, 1.0, size=size)
    elif kind == "normal":
        X = np.clip(rng.normal(0.5, 0.25, size=size), 0.0, 1.0)
    else:
        raise ValueError(f"kind must be 'uniform' or 'normal', got {kind!r}")
    return X.astype(np.float32)
