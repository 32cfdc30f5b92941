"""Loaders on the real files in ../shared/data and on small files the tests write."""

import gzip
import pickle
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from skgradunc import datasets
from skgradunc.datasets import to_gray28


def assert_images(X, n=None):
    assert X.ndim == 4 and X.shape[1:] == (1, 28, 28) and X.dtype == np.float32
    assert X.min() >= 0 and X.max() <= 1
    if n is not None:
        assert len(X) == n


# -- real files ----------------------------------------------------------------------------
def test_mnist_through_torchvision(shared_data):
    X, y = datasets.load_mnist(shared_data, train=False)
    assert_images(X, 10000)
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    raw = datasets.read_idx(shared_data / "MNIST" / "raw" / "t10k-images-idx3-ubyte")
    np.testing.assert_allclose(X[:, 0], raw / 255.0, atol=1e-6)   # a second, independent reader
    assert len(datasets.load_mnist(shared_data, train=True)[0]) == 60000


def test_notmnist_idx_gz(shared_data, tmp_path):
    X, y = datasets.load_notmnist(shared_data / "notmnist")
    assert_images(X, 10000)
    assert np.bincount(y).tolist() == [1000] * 10
    # torchvision's own IDX reader on a decompressed copy agrees
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor
    plain = tmp_path / "images"
    with gzip.open(shared_data / "notmnist" / "t10k-images-idx3-ubyte.gz") as src:
        plain.write_bytes(src.read())
    np.testing.assert_allclose(X[:, 0], read_sn3_pascalvincent_tensor(str(plain)).numpy() / 255,
                               atol=1e-6)


def test_omniglot_zips_are_inverted(shared_data):
    X, y = datasets.load_omniglot(shared_data / "omniglot")
    assert_images(X, 2720 + 3120)
    assert X[:, 0, 0, 0].max() < 0.05          # background (white paper) became dark
    assert X.mean() < 0.2                       # sparse bright ink
    assert len(np.unique(y)) > 100


def test_cifar10_from_the_jpeg_zip(shared_data):
    X, y = datasets.load_cifar10_gray(shared_data / "cifar10")
    assert_images(X, 10000)
    assert np.bincount(y).tolist() == [1000] * 10
    with zipfile.ZipFile(shared_data / "cifar10" / "cifar10_test_jpg.zip") as archive:
        with archive.open("test/airplane/0000.jpg") as handle:
            reference = np.asarray(Image.open(handle).convert("L").resize(
                (28, 28), Image.BILINEAR), dtype=np.float32) / 255
    assert np.abs(X[0, 0] - reference).mean() < 0.03   # PIL's own gray + resize


def test_emnist_sample_subsets(shared_data):
    path = shared_data / "emnist_sample" / "emnist_byclass_sample_test.npz"
    X, y = datasets.load_emnist_sample(path, subset="letters")
    assert_images(X)
    assert y.min() == 0 and y.max() == 25
    Xd, yd = datasets.load_emnist_sample(path, subset="digits")
    Xa, ya = datasets.load_emnist_sample(path, subset="byclass")
    assert len(Xa) == 1463 and len(Xd) + len(X) == len(Xa) and yd.max() == 9
    with pytest.raises(ValueError, match="subset"):
        datasets.load_emnist_sample(path, subset="symbols")


# -- formats we hold no real copy of: small files written here -------------------------------
def write_idx(path, array):
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


def test_emnist_torchvision_layout_is_turned_upright(tmp_path, shared_data):
    with np.load(shared_data / "emnist_sample" / "emnist_byclass_sample_test.npz") as data:
        upright = data["images"][:12]
    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    # EMNIST's files store images transposed; torchvision reads them as stored
    write_idx(raw / "emnist-letters-test-images-idx3-ubyte", upright.transpose(0, 2, 1).copy())
    write_idx(raw / "emnist-letters-test-labels-idx1-ubyte", np.arange(1, 13, dtype=np.uint8))
    X, y = datasets.load_emnist(tmp_path, split="letters", train=False)
    np.testing.assert_allclose(X[:, 0], upright / 255, atol=1e-6)
    assert y.tolist() == list(range(12))       # letters 1-26 -> 0-25


def test_cifar10_python_batches_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets.cifar
    # torchvision checks the real files' MD5 sums; ours are tiny stand-ins
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.RandomState(0)
    data = rng.randint(0, 256, (4, 3 * 32 * 32), dtype=np.uint8)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": data, "labels": [3, 1, 4, 1]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)
    for i in range(1, 6):   # torchvision requires them, though it reads only test_batch here
        (folder / f"data_batch_{i}").touch()
    X, y = datasets.load_cifar10_gray(tmp_path)
    assert_images(X, 4)
    assert y.tolist() == [3, 1, 4, 1]
    rgb = data.reshape(4, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(X, to_gray28(rgb), atol=1e-6)


def write_pngs(folder, classes, per_class, ink_on_white=False):
    rng = np.random.RandomState(0)
    for name in classes:
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.randint(0, 256, (20, 20), dtype=np.uint8)
            if ink_on_white:
                pixels = np.where(pixels > 200, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")


def test_image_folder_and_zip(tmp_path):
    write_pngs(tmp_path / "mine", ["cats", "dogs", "owls"], 3)
    X, y = datasets.load_image_folder(tmp_path / "mine")
    assert_images(X, 9)
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    shutil.make_archive(str(tmp_path / "mine"), "zip", tmp_path, "mine")
    Xz, yz = datasets.load_image_folder(tmp_path / "mine.zip")
    np.testing.assert_array_equal(Xz, X)
    np.testing.assert_array_equal(yz, y)
    inverted, _ = datasets.load_image_folder(tmp_path / "mine", invert=True)
    np.testing.assert_allclose(inverted, 1 - X, atol=1e-6)


def test_omniglot_torchvision_layout(tmp_path, monkeypatch):
    from torchvision.datasets import Omniglot
    monkeypatch.setattr(Omniglot, "_check_integrity", lambda self: True)
    write_pngs(tmp_path / "omniglot-py" / "images_background" / "Greek",
               ["character01", "character02"], 2, ink_on_white=True)
    (tmp_path / "omniglot-py" / "images_background.zip").touch()  # torchvision requires it
    X, y = datasets.load_omniglot(tmp_path)
    assert_images(X, 4)
    assert sorted(y.tolist()) == [0, 0, 1, 1]
    assert X[:, 0].mean() < 0.5                  # mostly white paper became dark


def test_notmnist_image_folder(tmp_path):
    write_pngs(tmp_path / "notMNIST_small", list("ABCDEFGHIJ"), 1)
    X, y = datasets.load_notmnist(tmp_path)
    assert_images(X, 10)
    assert y.tolist() == list(range(10))


@pytest.mark.parametrize("loader, match", [
    (lambda p: datasets.load_mnist(p), r"MNIST not found: looked in .*download=True"),
    (lambda p: datasets.load_emnist(p), r"EMNIST \(digits\) not found"),
    (lambda p: datasets.load_cifar10_gray(p), r"CIFAR-10 not found.*cifar10_test_jpg.zip"),
    (lambda p: datasets.load_omniglot(p), r"Omniglot not found.*images_background"),
    (lambda p: datasets.load_notmnist(p), r"notMNIST not found.*t10k-images-idx3-ubyte"),
    (lambda p: datasets.load_image_folder(p / "nothing"), "image folder not found"),
    (lambda p: datasets.load_emnist_sample(p / "x.npz"), "EMNIST sample not found"),
])
def test_missing_files_say_where_and_how(tmp_path, loader, match):
    with pytest.raises(FileNotFoundError, match=match) as info:
        loader(tmp_path)
    assert str(tmp_path.resolve()) in str(info.value)


def test_read_idx_rejects_broken_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="magic"):
        datasets.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 2), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(ValueError, match="header announces 8"):
        datasets.read_idx(tmp_path / "short")


def test_empty_image_folder(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        datasets.load_image_folder(tmp_path / "empty")


# -- damaged files: named, never reported as missing (issue 10) ------------------------------
def link_mnist(shared_data, root, damaged=None, keep=None):
    """root/MNIST/raw/ with links to the real files; ``damaged`` holds its first ``keep`` bytes."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (shared_data / "MNIST" / "raw").iterdir():
        if source.name == damaged:
            (raw / source.name).write_bytes(source.read_bytes()[:keep])
        else:
            (raw / source.name).symlink_to(source)
    return raw / str(damaged)


@pytest.mark.parametrize("damaged, keep", [
    ("t10k-images-idx3-ubyte", 5000), ("t10k-images-idx3-ubyte", 6),
    ("t10k-images-idx3-ubyte", 0), ("t10k-labels-idx1-ubyte", 3),
    ("t10k-labels-idx1-ubyte", 5000)])
def test_truncated_mnist_file_is_named_not_missing(shared_data, tmp_path, damaged, keep):
    path = link_mnist(shared_data, tmp_path, damaged, keep)
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        datasets.load_mnist(tmp_path, train=False)
    assert str(path) in str(info.value) and "download" in str(info.value)
    assert "not found" not in str(info.value)


def test_mnist_missing_file_is_named(shared_data, tmp_path):
    link_mnist(shared_data, tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="MNIST not found.*t10k-labels-idx1-ubyte"):
        datasets.load_mnist(tmp_path, train=False)


def test_emnist_truncated_file_is_named(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "emnist-digits-test-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    write_idx(raw / "emnist-digits-test-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    labels = raw / "emnist-digits-test-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1])
    with pytest.raises(ValueError, match=f"{labels}.*truncated or corrupt"):
        datasets.load_emnist(tmp_path, split="digits", train=False)


def test_images_and_labels_of_different_lengths_are_refused(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "emnist-digits-test-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    write_idx(raw / "emnist-digits-test-labels-idx1-ubyte", np.arange(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        datasets.load_emnist(tmp_path, split="digits", train=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(5, dtype=np.uint8))
    with pytest.raises(ValueError, match="4 images but 5 labels"):
        datasets.load_notmnist(tmp_path)


def test_gz_cut_in_the_middle_is_named(shared_data, tmp_path):
    source = shared_data / "notmnist" / "t10k-images-idx3-ubyte.gz"
    cut = tmp_path / source.name
    cut.write_bytes(source.read_bytes()[:len(source.read_bytes()) // 2])
    (tmp_path / "t10k-labels-idx1-ubyte.gz").symlink_to(source.with_name(
        "t10k-labels-idx1-ubyte.gz"))
    with pytest.raises(ValueError, match=f"{cut} is truncated or corrupt.*download"):
        datasets.read_idx(cut)
    with pytest.raises(ValueError, match=f"{cut} is truncated or corrupt"):
        datasets.load_notmnist(tmp_path)
    (tmp_path / "garbage.gz").write_bytes(b"this is no gzip stream")
    with pytest.raises(ValueError, match="garbage.gz is truncated or corrupt"):
        datasets.read_idx(tmp_path / "garbage.gz")


def test_read_idx_header_cut_short(tmp_path):
    (tmp_path / "header").write_bytes(b"\x00\x00\x08\x03\x00\x00\x27")
    with pytest.raises(ValueError, match="header.*truncated or corrupt"):
        datasets.read_idx(tmp_path / "header")


def test_cifar10_batches_damaged_or_missing(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"not a pickle")
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found.*data_batch_1"):
        datasets.load_cifar10_gray(tmp_path)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch is truncated or corrupt"):
        datasets.load_cifar10_gray(tmp_path)


def test_file_that_is_not_a_zip_is_named(shared_data, tmp_path):
    (tmp_path / "mine.zip").write_bytes(b"PK but not really")
    with pytest.raises(ValueError, match=r"mine.zip is not a zip archive.*corrupt") as info:
        datasets.load_image_folder(tmp_path / "mine.zip")
    assert "not found" not in str(info.value)
    source = shared_data / "omniglot" / "all_runs.zip"
    half = tmp_path / "omniglot" / "images_background_cut.zip"
    half.parent.mkdir()
    half.write_bytes(source.read_bytes()[:len(source.read_bytes()) // 2])
    with pytest.raises(ValueError, match="images_background_cut.zip is not a zip archive"):
        datasets.load_omniglot(tmp_path / "omniglot")


def test_corrupt_image_is_named_in_folder_and_zip(tmp_path):
    write_pngs(tmp_path / "mine", ["cats", "dogs"], 2)
    png = tmp_path / "mine" / "dogs" / "1.png"
    png.write_bytes(png.read_bytes()[:60])
    with pytest.raises(ValueError, match=f"{png}.*corrupt"):
        datasets.load_image_folder(tmp_path / "mine")
    shutil.make_archive(str(tmp_path / "mine"), "zip", tmp_path, "mine")
    with pytest.raises(ValueError, match=r"mine/dogs/1.png in .*mine.zip.*corrupt"):
        datasets.load_image_folder(tmp_path / "mine.zip")


def test_emnist_sample_damaged_or_incomplete(shared_data, tmp_path):
    source = shared_data / "emnist_sample" / "emnist_byclass_sample_test.npz"
    cut = tmp_path / "cut.npz"
    cut.write_bytes(source.read_bytes()[:1000])
    with pytest.raises(ValueError, match=f"{cut} is truncated or corrupt"):
        datasets.load_emnist_sample(cut)
    (tmp_path / "garbage.npz").write_bytes(b"garbage, no pickle")
    with pytest.raises(ValueError, match="garbage.npz is truncated or corrupt"):
        datasets.load_emnist_sample(tmp_path / "garbage.npz")
    np.savez(tmp_path / "partial.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="partial.npz lacks 'labels', 'letters_labels'"):
        datasets.load_emnist_sample(tmp_path / "partial.npz")
