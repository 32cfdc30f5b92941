"""What UQGAN's MNIST 0-4 benchmark runs on (Oberdiek, Fink & Rottmann 2022, Sec. 4;
``eval_ood_detection.py`` of the authors' code).

In distribution: MNIST digits 0-4, trained on the official training images (less a
validation part per run) and tested on the official test images of 0-4. Out of
distribution, each at most ``ood_size`` images: the test digits 5-9, EMNIST letters, Omniglot,
CIFAR-10 in gray, notMNIST and uniform noise. The paper's Fashion-MNIST and SVHN are not
available offline; notMNIST and noise are not in the paper's list (docs/uqgan.md).
Images stay at 28x28: every loader of the package gives that size, and LeNet-5 and the
auto-encoder take it (the authors resize to 32x32 for their LeNet, which insists on it).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import datasets
from ..concepts import load_concepts, real_concept_loaders

__all__ = ["UQGANData", "load_uqgan_data", "IN_DISTRIBUTION", "KNOWN_UNKNOWNS"]

IN_DISTRIBUTION = (0, 1, 2, 3, 4)
# the concepts of which the gradient meta classifiers "with known unknowns" see 200 images
# (the MNIST protocol's Table 3); every detector is scored on the other images only
KNOWN_UNKNOWNS = ("uniform noise", "CIFAR-10", "Omniglot")


@dataclass
class UQGANData:
    X_train: np.ndarray                 # official training images of 0-4 (train + validation)
    y_train: np.ndarray
    X_test: np.ndarray                  # official test images of 0-4
    y_test: np.ndarray
    ood: dict = field(default_factory=dict)     # concept name -> images
    known_unknowns: tuple = ()


def _in_distribution(X, y):
    keep = np.isin(y, IN_DISTRIBUTION)
    return X[keep], y[keep]


def load_uqgan_data(root, *, ood_size=2000, seed=0):
    """MNIST 0-4 and the unknown concepts found under ``root``.

    Raises
    ------
    ValueError
        Without ``root``. A missing MNIST raises the loader's FileNotFoundError; a missing
        unknown concept is skipped with a message (as ``--data mnist`` of the paper's
        protocol), noise is always there.
    """
    if root is None:
        raise ValueError("--protocol uqgan needs --root, the folder holding MNIST/raw/")
    root, rng = Path(root), np.random.RandomState(seed)
    X_train, y_train = _in_distribution(*datasets.load_mnist(root, train=True))
    X_all_test, y_all_test = datasets.load_mnist(root, train=False)
    X_test, y_test = _in_distribution(X_all_test, y_all_test)
    real = real_concept_loaders(root)
    loaders = {
        "MNIST 5-9": lambda: X_all_test[~np.isin(y_all_test, IN_DISTRIBUTION)],
        **{name: real[name] for name in ("EMNIST letters", "Omniglot", "CIFAR-10", "notMNIST")},
        "uniform noise": lambda: datasets.make_noise(ood_size, kind="uniform",
                                                     random_state=3),
    }
    ood = load_concepts(loaders, ood_size, rng)
    return UQGANData(X_train, y_train, X_test, y_test, ood,
                     tuple(c for c in KNOWN_UNKNOWNS if c in ood))
