"""The file formats behind the real data sets, and the errors that name a missing or
damaged file: IDX (MNIST's), .npz, folders or zips of class folders of images."""

import gzip
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._images import to_gray28

__all__ = ["READ_ERRORS", "not_found", "damaged", "read_npz", "load_image_folder",
           "read_images", "to_dataset", "read_idx", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


# What torchvision's readers raise on a damaged file: its "not found or corrupted",
# IDX shape and header errors (RuntimeError, ValueError, AssertionError), unpickling and
# I/O errors. PermissionError is left alone: its own message is the real cause.
READ_ERRORS = (RuntimeError, ValueError, AssertionError, EOFError, OSError,
               pickle.UnpicklingError)


def not_found(what, looked, how):
    return FileNotFoundError(f"{what} not found: looked in {looked}. {how}")


def damaged(path, detail):
    """The error for a file that exists but cannot be read."""
    return ValueError(f"{path} is truncated or corrupt ({detail}). Delete it and download it "
                      f"again (download=True) or copy it anew.")


def read_npz(path, keys):
    """The arrays ``keys`` of an .npz file (no pickle); a damaged file is named."""
    if not zipfile.is_zipfile(path):  # else numpy takes it for a pickle and says so
        raise damaged(path, "not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            absent = [key for key in keys if key not in data.files]
            if absent:
                raise ValueError(f"{path} lacks {', '.join(map(repr, absent))} (it holds "
                                 f"{', '.join(map(repr, data.files))})")
            return [data[key] for key in keys]
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:  # cut short, or no zip
        raise damaged(path, str(exc)) from exc


def load_image_folder(path, *, invert=False):
    """Your own images: a folder or zip whose files sit in one folder per class.

    Classes are the names of the folders holding the images, numbered in the
    sorted order of those names. Images are converted to gray scale and resized to
    28x28; ``invert=True`` for dark ink on light paper.

    Parameters
    ----------
    path : str or path-like
        The folder, or the zip file, of ``<class>/<image>`` files.
    invert : bool, default=False
        Invert the gray values (1 - x), for dark ink on light paper.

    Returns
    -------
    X : ndarray of float32, shape (n_samples, 1, 28, 28)
        The images, values in [0, 1].
    y : ndarray of int64, shape (n_samples,)
        The classes, numbered in the sorted order of their folder names.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from skgradunc.datasets import load_image_folder
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ["circle/0.png", "circle/1.jpg", "square/0.png"]:
    ...     (folder / name).parent.mkdir(exist_ok=True)
    ...     Image.new("L", (40, 30), color=255).save(folder / name)    # white, any size
    >>> X, y = load_image_folder(folder)
    >>> X.shape, y.tolist(), round(float(X.min()), 3)
    ((3, 1, 28, 28), [0, 0, 1], 1.0)
    >>> X, y = load_image_folder(folder, invert=True)    # for dark ink on white paper
    >>> round(float(X.max()), 3)
    0.0
    >>> shutil.rmtree(folder)
    """
    return to_dataset(*read_images(path, class_depth=1), invert=invert)


def to_dataset(images, names, invert):
    """Images of any sizes -> (X, y), classes numbered in the sorted order of their names."""
    classes = {name: i for i, name in enumerate(sorted(set(names)))}
    X = np.concatenate([to_gray28(img[None], invert=invert) for img in images])
    return X, np.asarray([classes[n] for n in names], dtype=np.int64)


def read_images(path, class_depth):
    """Images (uint8 gray arrays) and class names ('/'-joined parent folders)."""
    path = Path(path)
    images, names = [], []

    def add(handle, member, where):
        images.append(_decode_image(handle, where))
        names.append("/".join(Path(member).parts[-1 - class_depth:-1]))

    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            add(file, file.relative_to(path), file)
    elif path.is_file():
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a zip archive (it is corrupt, truncated or in "
                             f"another format). Expected a folder or a zip of <class>/<image> "
                             f"files.")
        with zipfile.ZipFile(path) as archive:
            for member in sorted(archive.namelist()):
                if member.lower().endswith(IMAGE_SUFFIXES):
                    with archive.open(member) as handle:
                        add(handle, member, f"{member} in {path}")
    else:
        raise not_found("image folder", path.resolve(),
                        "Expected a folder or a zip of <class>/<image> files.")
    if not images:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {path}")
    return images, names


def _decode_image(handle, where):
    """One image file as a uint8 gray array; a damaged one is named as ``where``."""
    from PIL import Image
    try:
        with Image.open(handle) as image:
            return np.asarray(image.convert("L"))
    except PermissionError:
        raise
    # Pillow: OSError (unidentified, truncated), SyntaxError (broken chunks);
    # zip members: BadZipFile (CRC), zlib.error, EOFError
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise ValueError(f"cannot read the image {where}: it is corrupt or truncated "
                         f"({exc}). Delete or replace it.") from exc


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}


def read_idx(path):
    """An IDX file (MNIST's format), plain or gzip-compressed, as a numpy array.

    Parameters
    ----------
    path : str or path-like
        The file; a name ending in ``.gz`` is read as gzip-compressed.

    Returns
    -------
    ndarray
        The array, of the shape and dtype its header gives (read-only: a view of
        the file's bytes).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When it exists but is truncated or corrupt, or is not an IDX file.

    Examples
    --------
    >>> import shutil, struct, tempfile
    >>> from pathlib import Path
    >>> from skgradunc.datasets import read_idx
    >>> folder = Path(tempfile.mkdtemp())
    >>> magic = bytes([0, 0, 0x08, 2])                # uint8 values, 2 dimensions
    >>> data = magic + struct.pack(">2I", 2, 3) + bytes(range(6))
    >>> _ = (folder / "numbers-idx2-ubyte").write_bytes(data)
    >>> read_idx(folder / "numbers-idx2-ubyte")
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    >>> shutil.rmtree(folder)
    """
    path = Path(path)
    data = _read_maybe_gzip(path)
    if len(data) < 4:
        raise damaged(path, f"{len(data)} bytes, shorter than an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        hint = "; gzip-compressed files must end in .gz" if data[:2] == b"\x1f\x8b" else ""
        raise ValueError(f"{path} is not an IDX file (bad magic number 0x{data[:4].hex()}): "
                         f"it is corrupt or in another format{hint}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise damaged(path, f"{len(data)} bytes, shorter than its {header}-byte header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise damaged(path, f"it holds {len(data) - header} bytes of data, its header "
                      f"announces {expected} (shape {shape})")
    return np.frombuffer(data, dtype, offset=header).reshape(shape)


def _read_maybe_gzip(path):
    if path.suffix != ".gz":
        with open(path, "rb") as handle:
            return handle.read()
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # cut short, or no gzip stream
        raise damaged(path, f"gzip: {exc}") from exc
