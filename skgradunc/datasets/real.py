"""Real data sets from their published file formats; nothing is downloaded unless asked.

Every loader returns ``(X, y)``: float32 (n, 1, 28, 28) in [0, 1] and int64 labels.
Where torchvision has a loader it does the reading (``download=False`` by default);
a missing file raises :class:`FileNotFoundError` saying where it looked and how to get
the data, and a file that exists but cannot be read raises :class:`ValueError` naming
it as truncated or corrupt.
"""

from pathlib import Path

import numpy as np

from ._formats import (READ_ERRORS, damaged, load_image_folder, not_found, read_idx, read_images,
                       read_npz, to_dataset)
from ._images import to_gray28

__all__ = ["load_mnist", "load_emnist", "load_emnist_sample", "load_cifar10_gray",
           "load_omniglot", "load_notmnist", "load_image_folder", "read_idx"]


def _torchvision(dataset_class, root, what, how, files, find_damaged, **kwargs):
    """``dataset_class(root, **kwargs)``, whose failures name their real cause.

    ``files`` are the paths torchvision requires: if one is missing the data set is
    not found; if all are there, a failure means a damaged file, which
    ``find_damaged(files)`` names (as the errors it would raise).
    """
    if _missing(files) and not kwargs.get("download"):
        raise not_found(what, Path(root).resolve(), f"{_missing_note(files)}{how}")
    try:
        return dataset_class(str(root), **kwargs)
    except PermissionError:
        raise
    except READ_ERRORS as exc:
        if _missing(files):  # download=True did not bring them
            raise not_found(what, Path(root).resolve(),
                            f"{_missing_note(files)}Downloading failed: {exc}") from exc
        errors = find_damaged(files) or [damaged(f"one of {', '.join(map(str, files))}",
                                                 f"torchvision: {type(exc).__name__}: {exc}")]
        raise ValueError(f"{what} could not be read: "
                         + " ".join(str(e) for e in errors)) from exc


def _missing(files):
    return [str(f) for f in files if not f.exists()]


def _missing_note(files):
    """'Missing: a, b. ' when only some of ``files`` exist (all missing needs no list)."""
    missing = _missing(files)
    return f"Missing: {', '.join(missing)}. " if len(missing) < len(files) else ""


def _damaged_idx(files):
    """The errors :func:`read_idx` raises on the damaged ones among ``files``."""
    errors = []
    for path in files:
        try:
            read_idx(path)
        except ValueError as exc:
            errors.append(exc)
    return errors


def _damaged_by_md5(checksums):
    """A ``find_damaged`` naming the files whose MD5 is not the published one."""
    def find_damaged(files):
        from torchvision.datasets.utils import check_integrity
        return [damaged(f, "its MD5 differs from the published one") for f in files
                if f.name in checksums and not check_integrity(str(f), checksums[f.name])]
    return find_damaged


def _idx_files(raw, prefixes):
    return [raw / f"{prefix}-{part}" for prefix in prefixes
            for part in ("images-idx3-ubyte", "labels-idx1-ubyte")]


def _check_same_length(what, images, labels):
    if len(images) != len(labels):
        raise ValueError(f"{what} holds {len(images)} images but {len(labels)} labels: its "
                         f"images and labels files do not belong together (one is damaged "
                         f"or from another split)")


def load_mnist(root, *, train=True, download=False):
    """MNIST through :class:`torchvision.datasets.MNIST` (``root/MNIST/raw/``).

    Parameters
    ----------
    root : str or path-like
        The folder holding ``MNIST/raw/`` (torchvision's layout).
    train : bool, default=True
        The training split (True) or the test split (False).
    download : bool, default=False
        Let torchvision download the missing files into ``root``.

    Returns
    -------
    X : ndarray of float32, shape (n_samples, 1, 28, 28)
        The images, values in [0, 1].
    y : ndarray of int64, shape (n_samples,)
        The digits, 0-9.

    Examples
    --------
    Four tiny IDX files in torchvision's layout (the real ones come from
    ``download=True``):

    >>> import shutil, struct, tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from skgradunc.datasets import load_mnist
    >>> def write_idx(path, array):          # MNIST's format: magic, sizes, uint8 values
    ...     header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    ...     _ = path.write_bytes(header + array.astype(np.uint8).tobytes())
    >>> root = Path(tempfile.mkdtemp())
    >>> raw = root / "MNIST" / "raw"
    >>> raw.mkdir(parents=True)
    >>> for part, n in [("train", 3), ("t10k", 2)]:    # torchvision requires all four
    ...     write_idx(raw / f"{part}-images-idx3-ubyte", np.zeros((n, 28, 28)))
    ...     write_idx(raw / f"{part}-labels-idx1-ubyte", np.arange(n))
    >>> X, y = load_mnist(root, train=False)
    >>> X.shape, X.dtype, y.tolist()
    ((2, 1, 28, 28), dtype('float32'), [0, 1])
    >>> shutil.rmtree(root)
    """
    from torchvision.datasets import MNIST
    # torchvision requires all four files, whichever split is read
    files = _idx_files(Path(root) / "MNIST" / "raw", ("train", "t10k"))
    data = _torchvision(MNIST, root, "MNIST",
                        "Pass download=True, or put the four IDX files in root/MNIST/raw/.",
                        files, _damaged_idx, train=train, download=download)
    _check_same_length("MNIST", data.data, data.targets)
    return to_gray28(data.data.numpy()), data.targets.numpy().astype(np.int64)


def load_emnist(root, *, split="digits", train=True, download=False):
    """EMNIST through :class:`torchvision.datasets.EMNIST` (``root/EMNIST/raw/``).

    Images are transposed into MNIST's orientation (EMNIST's files store them
    transposed). For ``split="letters"`` the labels 1-26 become 0-25 (a/A-z/Z).

    Parameters
    ----------
    root : str or path-like
        The folder holding ``EMNIST/raw/`` (torchvision's layout).
    split : str, default="digits"
        The EMNIST split, as :class:`torchvision.datasets.EMNIST` names it
        (``"byclass"``, ``"bymerge"``, ``"balanced"``, ``"letters"``, ``"digits"``,
        ``"mnist"``).
    train : bool, default=True
        The training part of the split (True) or its test part (False).
    download : bool, default=False
        Let torchvision download the missing files into ``root``.

    Returns
    -------
    X : ndarray of float32, shape (n_samples, 1, 28, 28)
        The images, values in [0, 1].
    y : ndarray of int64, shape (n_samples,)
        The split's labels (0-25 for ``"letters"``).

    Examples
    --------
    A tiny ``letters`` test split in torchvision's layout (the real files come from
    ``download=True``):

    >>> import shutil, struct, tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from skgradunc.datasets import load_emnist
    >>> def write_idx(path, array):          # MNIST's format: magic, sizes, uint8 values
    ...     header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    ...     _ = path.write_bytes(header + array.astype(np.uint8).tobytes())
    >>> root = Path(tempfile.mkdtemp())
    >>> raw = root / "EMNIST" / "raw"
    >>> raw.mkdir(parents=True)
    >>> images = np.zeros((2, 28, 28))
    >>> images[0, 0, 5] = 255                          # row 0, column 5 in the file
    >>> write_idx(raw / "emnist-letters-test-images-idx3-ubyte", images)
    >>> write_idx(raw / "emnist-letters-test-labels-idx1-ubyte", np.array([1, 26]))  # a, z
    >>> X, y = load_emnist(root, split="letters", train=False)
    >>> X.shape, y.tolist(), float(X[0, 0, 5, 0])    # transposed: row 5, column 0
    ((2, 1, 28, 28), [0, 25], 1.0)
    >>> shutil.rmtree(root)
    """
    from torchvision.datasets import EMNIST
    files = _idx_files(Path(root) / "EMNIST" / "raw",
                       [f"emnist-{split}-{'train' if train else 'test'}"])
    data = _torchvision(EMNIST, root, f"EMNIST ({split})",
                        "Pass download=True, or put the emnist-<split>-<train|test>-<images|"
                        "labels>-idx?-ubyte files in root/EMNIST/raw/.",
                        files, _damaged_idx, split=split, train=train, download=download)
    _check_same_length(f"EMNIST ({split})", data.data, data.targets)
    images = data.data.numpy().transpose(0, 2, 1)
    labels = data.targets.numpy().astype(np.int64)
    return to_gray28(images), labels - 1 if split == "letters" else labels


def load_emnist_sample(path, *, subset="letters"):
    """The EMNIST *byclass* sample kept as ``.npz`` (images already upright).

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file, holding the arrays ``images``, ``labels`` and
        ``letters_labels``.
    subset : {"letters", "digits", "byclass"}, default="letters"
        ``"letters"`` (labels 0-25, case merged), ``"digits"`` (0-9) or
        ``"byclass"`` (all 62 classes).

    Returns
    -------
    X : ndarray of float32, shape (n_samples, 1, 28, 28)
        The images, values in [0, 1].
    y : ndarray of int64, shape (n_samples,)
        The labels of ``subset``.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from skgradunc.datasets import load_emnist_sample
    >>> path = Path(tempfile.mkdtemp()) / "sample.npz"
    >>> np.savez(path, images=np.zeros((3, 28, 28), dtype=np.uint8),
    ...          labels=[3, 10, 36],           # byclass: 0-9 digits, 10-35 A-Z, 36-61 a-z
    ...          letters_labels=[-1, 1, 1])    # 1-26: a/A-z/Z; -1: a digit
    >>> X, y = load_emnist_sample(path)
    >>> X.shape, y.tolist(), load_emnist_sample(path, subset="digits")[1].tolist()
    ((2, 1, 28, 28), [0, 0], [3])
    >>> shutil.rmtree(path.parent)
    """
    path = Path(path)
    if not path.is_file():
        raise not_found("EMNIST sample", path.resolve(),
                        "Expected an .npz with 'images', 'labels' and 'letters_labels'.")
    images, labels, letters = read_npz(path, ("images", "labels", "letters_labels"))
    labels, letters = labels.astype(np.int64), letters.astype(np.int64)
    if subset == "letters":
        keep = letters > 0
        return to_gray28(images[keep]), letters[keep] - 1
    if subset == "digits":
        keep = labels < 10
        return to_gray28(images[keep]), labels[keep]
    if subset == "byclass":
        return to_gray28(images), labels
    raise ValueError(f"subset must be 'letters', 'digits' or 'byclass', got {subset!r}")


def load_cifar10_gray(root, *, train=False, download=False):
    """CIFAR-10 in gray scale at 28x28, as the paper's "shrunk, gray" concept.

    Reads torchvision's python batches (``root/cifar-10-batches-py``) through
    :class:`torchvision.datasets.CIFAR10` when they are there; otherwise an image
    folder or zip of class folders: ``root/test/<class>/*.jpg`` or
    ``root/cifar10_test_jpg.zip`` (``train`` then selects ``train``/``test``).

    Parameters
    ----------
    root : str or path-like
        The folder holding ``cifar-10-batches-py``, or the image folder or zip.
    train : bool, default=False
        The training split (True) or the test split (False).
    download : bool, default=False
        Let torchvision download the python batches into ``root``.

    Returns
    -------
    X : ndarray of float32, shape (n_samples, 1, 28, 28)
        The images, values in [0, 1].
    y : ndarray of int64, shape (n_samples,)
        The classes, 0-9 (from an image folder: its class folders, numbered in
        sorted order).

    Examples
    --------
    An image folder of two classes (the python batches cannot be made tiny:
    torchvision checks their MD5):

    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from skgradunc.datasets import load_cifar10_gray
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ["test/cat/0.png", "test/cat/1.png", "test/dog/0.png"]:
    ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
    ...     Image.new("RGB", (32, 32), color=(255, 255, 255)).save(root / name)
    >>> X, y = load_cifar10_gray(root)
    >>> X.shape, y.tolist(), round(float(X.max()), 3)
    ((3, 1, 28, 28), [0, 0, 1], 1.0)
    >>> shutil.rmtree(root)

    The python batches (all six, and batches.meta) read from
    ``root/cifar-10-batches-py/``; the test split gives X (10000, 1, 28, 28) and
    y (10000,):

    >>> X, y = load_cifar10_gray("data", download=True)  # doctest: +SKIP
    """
    root = Path(root)
    split = "train" if train else "test"
    if (root / "cifar-10-batches-py").is_dir() or download:
        from torchvision.datasets import CIFAR10
        # torchvision checks every batch's MD5, whichever split is read
        checksums = dict(CIFAR10.train_list + CIFAR10.test_list)
        checksums[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
        files = [root / CIFAR10.base_folder / name for name in checksums]
        data = _torchvision(CIFAR10, root, "CIFAR-10", "Pass download=True.", files,
                            _damaged_by_md5(checksums), train=train, download=download)
        return to_gray28(data.data), np.asarray(data.targets, dtype=np.int64)
    for candidate in (root / split, root / f"cifar10_{split}_jpg.zip"):
        if candidate.exists():
            return load_image_folder(candidate)
    raise not_found("CIFAR-10", root.resolve(),
                    "Expected cifar-10-batches-py/ (pass download=True to fetch it), "
                    f"{split}/<class>/ image folders, or cifar10_{split}_jpg.zip.")


def load_omniglot(root, *, background=True, download=False):
    """Omniglot characters, inverted so that ink is bright, at 28x28.

    Reads torchvision's layout (``root/omniglot-py/images_background``) through
    :class:`torchvision.datasets.Omniglot`, or else every ``images_background*.zip``
    (``images_evaluation*.zip`` when ``background=False``) in ``root``. Labels
    number the characters (alphabet/character folders) in sorted order.

    Parameters
    ----------
    root : str or path-like
        The folder holding ``omniglot-py/`` (torchvision's layout) or the zip files.
    background : bool, default=True
        The background set (True) or the evaluation set (False).
    download : bool, default=False
        Let torchvision download the set into ``root``.

    Returns
    -------
    X : ndarray of float32, shape (n_samples, 1, 28, 28)
        The images, values in [0, 1].
    y : ndarray of int64, shape (n_samples,)
        The character of each image, numbered as described above.

    Examples
    --------
    A zip of two characters of one alphabet (torchvision's layout cannot be made
    tiny: it checks the MD5 of the zip it came from):

    >>> import io, shutil, tempfile, zipfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from skgradunc.datasets import load_omniglot
    >>> root = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(root / "images_background_small1.zip", "w") as archive:
    ...     for character in ["character01", "character02"]:
    ...         png = io.BytesIO()
    ...         Image.new("L", (105, 105), color=255).save(png, format="PNG")  # white paper
    ...         member = f"images_background_small1/Latin/{character}/0.png"
    ...         archive.writestr(member, png.getvalue())
    >>> X, y = load_omniglot(root)
    >>> X.shape, y.tolist(), round(float(X.max()), 3)  # inverted: the paper became 0
    ((2, 1, 28, 28), [0, 1], 0.0)
    >>> shutil.rmtree(root)

    torchvision's layout reads ``root/omniglot-py/images_background/`` (beside
    ``images_background.zip``); the background set gives X (19280, 1, 28, 28) and
    y (19280,), 964 characters:

    >>> X, y = load_omniglot("data", download=True)  # doctest: +SKIP
    """
    root = Path(root)
    folder = "images_background" if background else "images_evaluation"
    if (root / "omniglot-py" / folder).is_dir() or download:
        from torchvision.datasets import Omniglot
        # torchvision reads the folder but checks the MD5 of the zip it came from
        files = [root / Omniglot.folder / f"{folder}.zip", root / Omniglot.folder / folder]
        data = _torchvision(Omniglot, root, "Omniglot", "Pass download=True.", files,
                            _damaged_by_md5({f"{folder}.zip": Omniglot.zips_md5[folder]}),
                            background=background, download=download)
        items = [data[i] for i in range(len(data))]  # each read opens an image file: once
        images = np.stack([np.asarray(image, dtype=np.uint8) for image, _ in items])
        labels = np.asarray([label for _, label in items], dtype=np.int64)
        return to_gray28(images, invert=True), labels
    zips = sorted(root.glob(f"{folder}*.zip"))
    if not zips:
        raise not_found("Omniglot", root.resolve(),
                        f"Expected omniglot-py/{folder}/ (pass download=True to fetch it) or "
                        f"{folder}*.zip files.")
    parts = [read_images(z, class_depth=2) for z in zips]
    return to_dataset([img for part in parts for img in part[0]],
                      [name for part in parts for name in part[1]], invert=True)


def load_notmnist(root, *, train=False):
    """The notMNIST letters A-J (labels 0-9) from MNIST-format IDX files.

    Looks for ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``
    (``train-*`` when ``train=True``) in ``root``; otherwise an image folder
    ``root/notMNIST_small/<letter>/*.png`` (``notMNIST_large`` for train).

    Parameters
    ----------
    root : str or path-like
        The folder holding the IDX files or the image folder.
    train : bool, default=False
        Read the ``train-*`` files (or ``notMNIST_large``) instead of the ``t10k-*``
        ones (or ``notMNIST_small``).

    Returns
    -------
    X : ndarray of float32, shape (n_samples, 1, 28, 28)
        The images, values in [0, 1].
    y : ndarray of int64, shape (n_samples,)
        The letters A-J as 0-9.

    Examples
    --------
    >>> import gzip, shutil, struct, tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from skgradunc.datasets import load_notmnist
    >>> def write_idx_gz(path, array):       # MNIST's format: magic, sizes, uint8 values
    ...     header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    ...     with gzip.open(path, "wb") as handle:
    ...         _ = handle.write(header + array.astype(np.uint8).tobytes())
    >>> root = Path(tempfile.mkdtemp())
    >>> write_idx_gz(root / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28)))
    >>> write_idx_gz(root / "t10k-labels-idx1-ubyte.gz", np.array([0, 4, 9]))  # A, E, J
    >>> X, y = load_notmnist(root)
    >>> X.shape, y.tolist()
    ((3, 1, 28, 28), [0, 4, 9])
    >>> shutil.rmtree(root)
    """
    root = Path(root)
    prefix = "train" if train else "t10k"
    for suffix in (".gz", ""):
        images = root / f"{prefix}-images-idx3-ubyte{suffix}"
        labels = root / f"{prefix}-labels-idx1-ubyte{suffix}"
        if images.is_file() and labels.is_file():
            X, y = read_idx(images), read_idx(labels).astype(np.int64)
            _check_same_length(f"notMNIST ({images.parent})", X, y)
            return to_gray28(X), y
    folder = root / ("notMNIST_large" if train else "notMNIST_small")
    if folder.is_dir():
        return load_image_folder(folder)
    raise not_found("notMNIST", root.resolve(),
                    f"Expected {prefix}-images-idx3-ubyte(.gz) and {prefix}-labels-idx1-ubyte"
                    f"(.gz), or a {folder.name}/ folder of letter folders.")
