"""Turning any image batch into the package's format: float32 (n, 1, size, size) in [0, 1]."""

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["to_gray28"]

# ITU-R BT.601 luma, as Pillow's convert("L") and torchvision's rgb_to_grayscale use
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_gray28(images, *, size=28, invert=False):
    """Gray scale, resized with anti-aliasing, scaled to [0, 1].

    Parameters
    ----------
    images : array of shape (n, H, W), (n, H, W, 3|4) or (n, 1|3, H, W)
        Pixel values: uint8 (0-255), bool (ink = True) or float in [0, 1].
    size : int
        Output height and width.
    invert : bool
        1 - x, e.g. so that dark ink on white paper becomes bright like the digits.

    Returns
    -------
    ndarray of float32, shape (n, 1, size, size)
        The gray images, values in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skgradunc.datasets import to_gray28
    >>> rgb = np.zeros((2, 32, 32, 3), dtype=np.uint8)    # two black colour images
    >>> rgb[:, 8:24, 8:24] = 255                           # with a white square
    >>> X = to_gray28(rgb)
    >>> X.shape, X.dtype, float(X.min()), round(float(X[0, 0, 14, 14]), 3)
    ((2, 1, 28, 28), dtype('float32'), 0.0, 1.0)
    >>> to_gray28(rgb, size=8, invert=True).shape
    (2, 1, 8, 8)
    """
    x = np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255
    else:
        x = x.astype(np.float32)
    if x.ndim == 4 and x.shape[-1] in (3, 4):          # channels last (image files)
        x = x[..., :3] @ LUMA
    elif x.ndim == 4 and x.shape[1] == 3:              # channels first
        x = np.einsum("nchw,c->nhw", x, LUMA)
    elif x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"expected (n, H, W) or colour images, got shape {np.shape(images)}")
    t = torch.from_numpy(np.ascontiguousarray(x))[:, None]
    if t.shape[-2:] != (size, size):
        shrinking = t.shape[-1] > size or t.shape[-2] > size
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=shrinking)
    t = t.clamp(0.0, 1.0)
    if invert:
        t = 1.0 - t
    return t.numpy().astype(np.float32, copy=False)
