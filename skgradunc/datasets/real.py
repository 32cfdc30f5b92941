"""Real data sets from their published file formats; nothing is downloaded unless asked.

Every loader returns ``(X, y)``: float32 (n, 1, 28, 28) in [0, 1] and int64 labels.
Where torchvision has a loader it does the reading (``download=False`` by default);
a missing file raises :class:`FileNotFoundError` saying where it looked and how to get
the data.
"""

import gzip
import struct
import zipfile
from pathlib import Path

import numpy as np

from ._images import to_gray28

__all__ = ["load_mnist", "load_emnist", "load_emnist_sample", "load_cifar10_gray",
           "load_omniglot", "load_notmnist", "load_image_folder", "read_idx"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def _not_found(what, looked, how):
    return FileNotFoundError(f"{what} not found: looked in {looked}. {how}")


def _torchvision(dataset_class, root, what, how, **kwargs):
    try:
        return dataset_class(str(root), **kwargs)
    except RuntimeError as exc:  # torchvision: "Dataset not found ..."
        raise _not_found(what, Path(root).resolve(), how) from exc


def load_mnist(root, *, train=True, download=False):
    """MNIST through :class:`torchvision.datasets.MNIST` (``root/MNIST/raw/``)."""
    from torchvision.datasets import MNIST
    data = _torchvision(MNIST, root, "MNIST",
                        "Pass download=True, or put the four IDX files in root/MNIST/raw/.",
                        train=train, download=download)
    return to_gray28(data.data.numpy()), data.targets.numpy().astype(np.int64)


def load_emnist(root, *, split="digits", train=True, download=False):
    """EMNIST through :class:`torchvision.datasets.EMNIST` (``root/EMNIST/raw/``).

    Images are transposed into MNIST's orientation (EMNIST's files store them
    transposed). For ``split="letters"`` the labels 1-26 become 0-25 (a/A-z/Z).
    """
    from torchvision.datasets import EMNIST
    data = _torchvision(EMNIST, root, f"EMNIST ({split})",
                        "Pass download=True, or put the emnist-<split>-<train|test>-<images|"
                        "labels>-idx?-ubyte files in root/EMNIST/raw/.",
                        split=split, train=train, download=download)
    images = data.data.numpy().transpose(0, 2, 1)
    labels = data.targets.numpy().astype(np.int64)
    return to_gray28(images), labels - 1 if split == "letters" else labels


def load_emnist_sample(path, *, subset="letters"):
    """The EMNIST *byclass* sample kept as ``.npz`` (images already upright).

    ``subset``: ``"letters"`` (labels 0-25, case merged), ``"digits"`` (0-9) or
    ``"byclass"`` (all 62 classes).
    """
    path = Path(path)
    if not path.is_file():
        raise _not_found("EMNIST sample", path.resolve(),
                         "Expected an .npz with 'images', 'labels' and 'letters_labels'.")
    with np.load(path, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"].astype(np.int64)
        letters = data["letters_labels"].astype(np.int64)
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
    """
    root = Path(root)
    split = "train" if train else "test"
    if (root / "cifar-10-batches-py").is_dir() or download:
        from torchvision.datasets import CIFAR10
        data = _torchvision(CIFAR10, root, "CIFAR-10", "Pass download=True.", train=train,
                            download=download)
        return to_gray28(data.data), np.asarray(data.targets, dtype=np.int64)
    for candidate in (root / split, root / f"cifar10_{split}_jpg.zip"):
        if candidate.exists():
            return load_image_folder(candidate)
    raise _not_found("CIFAR-10", root.resolve(),
                     "Expected cifar-10-batches-py/ (pass download=True to fetch it), "
                     f"{split}/<class>/ image folders, or cifar10_{split}_jpg.zip.")


def load_omniglot(root, *, background=True, download=False):
    """Omniglot characters, inverted so that ink is bright, at 28x28.

    Reads torchvision's layout (``root/omniglot-py/images_background``) through
    :class:`torchvision.datasets.Omniglot`, or else every ``images_background*.zip``
    (``images_evaluation*.zip`` when ``background=False``) in ``root``. Labels
    number the characters (alphabet/character folders) in sorted order.
    """
    root = Path(root)
    folder = "images_background" if background else "images_evaluation"
    if (root / "omniglot-py" / folder).is_dir() or download:
        from torchvision.datasets import Omniglot
        data = _torchvision(Omniglot, root, "Omniglot", "Pass download=True.",
                            background=background, download=download)
        items = [data[i] for i in range(len(data))]  # each read opens an image file: once
        images = np.stack([np.asarray(image, dtype=np.uint8) for image, _ in items])
        labels = np.asarray([label for _, label in items], dtype=np.int64)
        return to_gray28(images, invert=True), labels
    zips = sorted(root.glob(f"{folder}*.zip"))
    if not zips:
        raise _not_found("Omniglot", root.resolve(),
                         f"Expected omniglot-py/{folder}/ (pass download=True to fetch it) or "
                         f"{folder}*.zip files.")
    parts = [_read_images(z, class_depth=2) for z in zips]
    return _to_dataset([img for part in parts for img in part[0]],
                       [name for part in parts for name in part[1]], invert=True)


def load_notmnist(root, *, train=False):
    """notMNIST letters A-J (labels 0-9) from MNIST-format IDX files.

    Looks for ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``
    (``train-*`` when ``train=True``) in ``root``; otherwise an image folder
    ``root/notMNIST_small/<letter>/*.png`` (``notMNIST_large`` for train).
    """
    root = Path(root)
    prefix = "train" if train else "t10k"
    for suffix in (".gz", ""):
        images = root / f"{prefix}-images-idx3-ubyte{suffix}"
        labels = root / f"{prefix}-labels-idx1-ubyte{suffix}"
        if images.is_file() and labels.is_file():
            return to_gray28(read_idx(images)), read_idx(labels).astype(np.int64)
    folder = root / ("notMNIST_large" if train else "notMNIST_small")
    if folder.is_dir():
        return load_image_folder(folder)
    raise _not_found("notMNIST", root.resolve(),
                     f"Expected {prefix}-images-idx3-ubyte(.gz) and {prefix}-labels-idx1-ubyte"
                     f"(.gz), or a {folder.name}/ folder of letter folders.")


def load_image_folder(path, *, invert=False):
    """Your own images: a folder or zip whose files sit in one folder per class.

    Classes are the names of the folders holding the images, numbered in the
    sorted order of those names. Images are converted to gray scale and resized to
    28x28; ``invert=True`` for dark ink on light paper.
    """
    return _to_dataset(*_read_images(path, class_depth=1), invert=invert)


def _to_dataset(images, names, invert):
    """Images of any sizes -> (X, y), classes numbered in the sorted order of their names."""
    classes = {name: i for i, name in enumerate(sorted(set(names)))}
    X = np.concatenate([to_gray28(img[None], invert=invert) for img in images])
    return X, np.asarray([classes[n] for n in names], dtype=np.int64)


def _read_images(path, class_depth):
    """Images (uint8 gray arrays) and class names ('/'-joined parent folders)."""
    from PIL import Image
    path = Path(path)
    images, names = [], []

    def add(handle, member):
        parts = Path(member).parts
        with Image.open(handle) as image:
            images.append(np.asarray(image.convert("L")))
        names.append("/".join(parts[-1 - class_depth:-1]))

    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in sorted(archive.namelist()):
                if member.lower().endswith(IMAGE_SUFFIXES):
                    with archive.open(member) as handle:
                        add(handle, member)
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            add(file, file.relative_to(path))
    else:
        raise _not_found("image folder", path.resolve(),
                         "Expected a folder or a zip of <class>/<image> files.")
    if not images:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {path}")
    return images, names


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}


def read_idx(path):
    """An IDX file (MNIST's format), plain or gzip-compressed, as a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - 4 - 4 * ndim != expected:
        raise ValueError(f"{path} holds {len(data) - 4 - 4 * ndim} bytes of data, its header "
                         f"announces {expected} (shape {shape})")
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape)
