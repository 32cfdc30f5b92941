"""The unknown concepts both protocols score against: the real sets kept under --root,
subsampled, and the known unknowns a meta classifier may train on."""

from pathlib import Path

from .. import datasets

__all__ = ["KNOWN_UNKNOWN_SIZE", "subsample", "real_concept_loaders", "load_concepts"]

KNOWN_UNKNOWN_SIZE = 200      # the paper's "200 uniform noise images", per concept


def subsample(X, n, rng):
    return X if len(X) <= n else X[rng.choice(len(X), n, replace=False)]


def real_concept_loaders(root):
    """{name: function returning its images} of the unknown concepts kept under ``root``
    (../shared/data's layout)."""
    root = Path(root)
    return {
        "notMNIST": lambda: datasets.load_notmnist(root / "notmnist")[0],
        "Omniglot": lambda: datasets.load_omniglot(root / "omniglot")[0],
        "CIFAR-10": lambda: datasets.load_cifar10_gray(root / "cifar10")[0],
        "EMNIST letters": lambda: datasets.load_emnist_sample(
            root / "emnist_sample" / "emnist_byclass_sample_test.npz")[0],
    }


def load_concepts(loaders, ood_size, rng):
    """{name: at most ``ood_size`` of its images}, in the order of ``loaders``; a concept
    whose files are missing is skipped with a message."""
    ood = {}
    for name, load in loaders.items():
        try:
            ood[name] = subsample(load(), ood_size, rng)
        except FileNotFoundError as exc:
            print(f"skipping {name}: {exc}")
    return ood
