"""Data sets that ship with the package (or with scikit-learn): nothing to download."""

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.utils import Bunch, check_random_state

from ._images import to_gray28

__all__ = ["load_digits28", "load_letters28", "load_natural28"]


def load_digits28(*, return_X_y=False, image_size=28):
    """Scikit-learn's bundled handwritten digits, resampled to 1x28x28.

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


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _glyph_font(size):
    """Pillow's bundled scalable font (Pillow >= 10.1 with FreeType), else its bitmap font."""
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - old Pillow: fixed-size bitmap font
        return ImageFont.load_default()


def load_letters28(n_per_class=40, *, random_state=0, return_X_y=False):
    """Letters rendered by the package: an embedded stand-in for EMNIST letters.

    Upper- and lower-case A-Z drawn with Pillow's bundled font at random sizes,
    stroke widths, rotations, shears and offsets, bright ink on black like the
    digits, then anti-aliased down to 28x28. No download; deterministic for a
    given ``random_state``. Labels 0-25 stand for a/A-z/Z (case merged, as EMNIST
    letters).

    Parameters
    ----------
    n_per_class : int, default=40
        Images per letter (half upper, half lower case).
    random_state : int or RandomState, default=0
        Seeds the sizes, strokes, rotations, shears and offsets of the glyphs.
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.

    Returns
    -------
    data : Bunch or tuple of ndarray
        Bunch (``data`` float32 (26 * n_per_class, 1, 28, 28) in [0, 1], ``target``
        int64 (26 * n_per_class,), ``target_names``, ``DESCR``) or ``(X, y)`` when
        ``return_X_y`` is True.

    Examples
    --------
    >>> from skgradunc.datasets import load_letters28
    >>> X, y = load_letters28(4, return_X_y=True)
    >>> X.shape, sorted(set(y.tolist())) == list(range(26))
    ((104, 1, 28, 28), True)
    """
    from PIL import Image, ImageDraw
    if not isinstance(n_per_class, numbers.Integral) or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    rng = check_random_state(random_state)
    canvas = 64
    images, labels = [], []
    for label, upper in enumerate(LETTERS):
        for i in range(n_per_class):
            char = upper if i % 2 == 0 else upper.lower()
            font = _glyph_font(int(rng.randint(30, 46)))
            image = Image.new("L", (canvas, canvas), 0)
            draw = ImageDraw.Draw(image)
            stroke = int(rng.randint(0, 3))
            left, top, right, bottom = draw.textbbox((0, 0), char, font=font, stroke_width=stroke)
            origin = ((canvas - (right - left)) / 2 - left + rng.uniform(-3, 3),
                      (canvas - (bottom - top)) / 2 - top + rng.uniform(-3, 3))
            draw.text(origin, char, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
            shear = rng.uniform(-0.25, 0.25)
            image = image.transform(image.size, Image.AFFINE, (1, shear, -shear * canvas / 2,
                                                               0, 1, 0), resample=Image.BILINEAR)
            image = image.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR)
            images.append(np.asarray(image))
            labels.append(label)
    X = to_gray28(np.stack(images))
    y = np.asarray(labels, dtype=np.int64)
    if return_X_y:
        return X, y
    return Bunch(data=X, target=y, target_names=np.array(list(LETTERS)),
                 DESCR="Letters A-Z / a-z rendered with Pillow's bundled font, randomly "
                       "sized, sheared, rotated and shifted; 1x28x28 float32 in [0, 1].")


def load_natural28(n_samples=1000, *, random_state=0):
    """Patches of natural photographs: an embedded stand-in for gray CIFAR-10.

    Random square crops (28 to 160 pixels, randomly mirrored) of the two
    photographs bundled with scikit-learn (:func:`sklearn.datasets.load_sample_images`),
    converted to gray scale and resized to 28x28 with anti-aliasing.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of patches.
    random_state : int, RandomState or None, default=0
        Seeds the choice of photograph, crop size, position and mirroring.

    Returns
    -------
    X : ndarray of float32, shape (n_samples, 1, 28, 28)
        The patches, values in [0, 1].

    Examples
    --------
    >>> from skgradunc.datasets import load_natural28
    >>> load_natural28(5).shape
    (5, 1, 28, 28)
    """
    from sklearn.datasets import load_sample_images
    if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    rng = check_random_state(random_state)
    photos = load_sample_images().images
    patches = []
    for _ in range(n_samples):
        photo = photos[rng.randint(len(photos))]
        side = int(rng.randint(28, 161))
        top = int(rng.randint(0, photo.shape[0] - side + 1))
        left = int(rng.randint(0, photo.shape[1] - side + 1))
        patch = photo[top:top + side, left:left + side]
        if rng.rand() < 0.5:
            patch = patch[:, ::-1]
        patches.append(to_gray28(patch[None])[0])
    return np.stack(patches)
