"""What each experiment runs on: the in-distribution set and its unknown concepts."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import datasets
from ..concepts import load_concepts, real_concept_loaders, subsample
from ..recipes import MNIST_SPLIT, PAPER_SPLIT, RECIPES

__all__ = ["ExperimentData", "load_experiment_data", "LOADERS", "PAPER_SPLIT", "MNIST_SPLIT"]


@dataclass
class ExperimentData:
    X: np.ndarray                       # in-distribution images
    y: np.ndarray                       # their labels
    ood: dict = field(default_factory=dict)   # concept name -> images
    known_unknowns: tuple = ()          # concepts added, in order, to the NN's training (Table 3)
    lr: float = 0.1                     # the data set's recipe (recipes.RECIPES)
    epochs: int = 10
    batch_size: int = 256
    split: tuple = PAPER_SPLIT          # train / validation / test fractions


def _digits(root, rng, ood_size):
    X, y = datasets.load_digits28(return_X_y=True)
    n = min(ood_size, 1000)
    ood = {
        "letters": subsample(datasets.load_letters28(40, random_state=1, return_X_y=True)[0],
                             n, rng),
        "natural images": datasets.load_natural28(n, random_state=2),
        "uniform noise": datasets.make_noise(n, kind="uniform", random_state=3),
        "normal noise": datasets.make_noise(n, kind="normal", random_state=4),
    }
    return ExperimentData(X, y, ood, ("uniform noise", "natural images", "letters"),
                          **RECIPES["digits"])


def _mnist(root, rng, ood_size):
    if root is None:
        raise ValueError("--data mnist needs --root, the folder holding MNIST/raw/")
    root = Path(root)
    X_train, y_train = datasets.load_mnist(root, train=True)
    X_test, y_test = datasets.load_mnist(root, train=False)
    real = real_concept_loaders(root)
    ood = load_concepts({name: real[name] for name in
                         ("notMNIST", "Omniglot", "CIFAR-10", "EMNIST letters")},
                        ood_size, rng)
    ood["uniform noise"] = datasets.make_noise(ood_size, kind="uniform", random_state=3)
    ood["normal noise"] = datasets.make_noise(ood_size, kind="normal", random_state=4)
    known = tuple(c for c in ("uniform noise", "CIFAR-10", "Omniglot") if c in ood)
    return ExperimentData(np.concatenate([X_train, X_test]), np.concatenate([y_train, y_test]),
                          ood, known, **RECIPES["mnist"])


def _emnist(root, rng, ood_size):
    if root is None:
        raise ValueError("--data emnist needs --root, the folder holding EMNIST/raw/")
    X_train, y_train = datasets.load_emnist(root, split="digits", train=True)
    X_test, y_test = datasets.load_emnist(root, split="digits", train=False)
    letters = subsample(datasets.load_emnist(root, split="letters", train=False)[0],
                        ood_size, rng)
    ood = {"EMNIST letters": letters,
           "uniform noise": datasets.make_noise(ood_size, kind="uniform", random_state=3),
           "normal noise": datasets.make_noise(ood_size, kind="normal", random_state=4)}
    return ExperimentData(np.concatenate([X_train, X_test]), np.concatenate([y_train, y_test]),
                          ood, ("uniform noise",), **RECIPES["emnist"])


LOADERS = {"digits": _digits, "mnist": _mnist, "emnist": _emnist}


def load_experiment_data(name, root=None, *, ood_size=2000, seed=0):
    """In-distribution data, out-of-distribution concepts and settings for ``name``."""
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(LOADERS)}")
    return LOADERS[name](root, np.random.RandomState(seed), ood_size)
