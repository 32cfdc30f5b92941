"""Data sets, all as float32 (n, 1, 28, 28) in [0, 1] with integer labels.

* embedded, no download: :func:`load_digits28` (the default in-distribution set),
  :func:`load_letters28` (glyphs rendered by the package), :func:`load_natural28`
  (patches of scikit-learn's sample photographs), :func:`make_noise`;
* real data read through torchvision where it has a loader (``download=False`` by
  default): :func:`load_mnist`, :func:`load_emnist`, :func:`load_cifar10_gray`,
  :func:`load_omniglot`, :func:`load_notmnist`, and :func:`load_image_folder` for a
  folder or zip of class folders of your own.
"""

from ._images import to_gray28
from .embedded import load_digits28, load_letters28, load_natural28
from .noise import make_noise
from .real import (load_cifar10_gray, load_emnist, load_emnist_sample, load_image_folder,
                   load_mnist, load_notmnist, load_omniglot, read_idx)

__all__ = ["load_cifar10_gray", "load_digits28", "load_emnist", "load_emnist_sample",
           "load_image_folder", "load_letters28", "load_mnist", "load_natural28",
           "load_notmnist", "load_omniglot", "make_noise", "read_idx", "to_gray28"]
