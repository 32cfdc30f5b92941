import numpy as np
import pytest
from sklearn.datasets import load_digits

from skgradunc.datasets import load_digits28, make_noise


def test_load_digits28_shape_range_and_labels(digits):
    X, y = digits
    assert X.shape == (1797, 1, 28, 28) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    assert y.dtype == np.int64 and np.array_equal(np.unique(y), np.arange(10))
    assert np.array_equal(y, load_digits().target)


def test_load_digits28_bunch():
    bunch = load_digits28()
    assert bunch.data.shape == (1797, 1, 28, 28)
    assert list(bunch.target_names) == list(range(10))
    assert "1,797" in bunch.DESCR


def test_resampling_at_the_original_size_is_the_original_image():
    # Bilinear resampling to the same size is the identity: an independent check of
    # the scaling (0-16 -> 0-1) and of the pixel order.
    X = load_digits28(return_X_y=True, image_size=8)[0]
    np.testing.assert_allclose(X[:, 0], load_digits().images / 16.0, rtol=0, atol=1e-6)


def test_upsampled_images_keep_the_digit_mass():
    X = load_digits28(return_X_y=True)[0]
    original = load_digits().images / 16.0
    ratio = X.reshape(len(X), -1).mean(1) / original.reshape(len(X), -1).mean(1)
    assert np.all(np.abs(ratio - 1) < 0.2)


@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_make_noise_shape_range_and_reproducibility(kind):
    X = make_noise(500, kind=kind, shape=(1, 28, 28), random_state=3)
    assert X.shape == (500, 1, 28, 28) and X.dtype == np.float32
    assert X.min() >= 0 and X.max() <= 1
    np.testing.assert_array_equal(X, make_noise(500, kind=kind, random_state=3))
    assert not np.array_equal(X, make_noise(500, kind=kind, random_state=4))


def test_make_noise_moments():
    uniform = make_noise(400, kind="uniform", random_state=0)
    assert abs(uniform.mean() - 0.5) < 0.01 and abs(uniform.std() - 12 ** -0.5) < 0.01
    normal = make_noise(400, kind="normal", random_state=0)
    assert abs(normal.mean() - 0.5) < 0.01 and 0.2 < normal.std() < 0.25  # clipped N(.5, .25)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_samples": 0}, "n_samples"), ({"n_samples": 2.5}, "n_samples"),
    ({"n_samples": 5, "kind": "pink"}, "kind"), ({"n_samples": 5, "shape": (1, 0, 28)}, "shape")])
def test_make_noise_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_noise(**kwargs)


@pytest.mark.parametrize("shape", [28, "1x28x28", (1, 28.5, 28), (1, "28", 28), (), None])
def test_make_noise_shape_must_be_a_tuple_of_ints(shape):
    with pytest.raises(ValueError, match=r"shape must be a tuple of positive ints such as "
                                         r"\(1, 28, 28\)") as info:
        make_noise(5, shape=shape)
    assert str(info.value).endswith(f"got {shape!r}")


def test_make_noise_accepts_numpy_sizes_and_lists():
    X = np.zeros((3, 1, 8, 8))
    assert make_noise(2, shape=X.shape[1:], random_state=0).shape == (2, 1, 8, 8)
    assert make_noise(np.int64(2), shape=[1, np.int32(8), 8], random_state=0).shape == (2, 1, 8, 8)


def test_load_digits28_bad_size():
    with pytest.raises(ValueError, match="image_size"):
        load_digits28(image_size=4)


def test_to_gray28_matches_pillow_gray_conversion():
    from PIL import Image
    from skgradunc.datasets import to_gray28
    rgb = np.random.RandomState(0).randint(0, 256, (2, 28, 28, 3), dtype=np.uint8)
    ours = to_gray28(rgb)
    pillow = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in rgb]) / 255
    np.testing.assert_allclose(ours[:, 0], pillow, atol=1 / 255 + 1e-6)  # Pillow rounds
    np.testing.assert_allclose(to_gray28(rgb.transpose(0, 3, 1, 2)), ours, atol=1e-6)
    np.testing.assert_allclose(to_gray28(rgb, invert=True), 1 - ours, atol=1e-6)
    with pytest.raises(ValueError, match="expected"):
        to_gray28(np.zeros((2, 3)))


def test_embedded_letters_and_natural_patches():
    from skgradunc.datasets import load_letters28, load_natural28
    X, y = load_letters28(6, return_X_y=True)
    assert X.shape == (156, 1, 28, 28) and np.bincount(y).tolist() == [6] * 26
    assert X[:, 0, 0, 0].max() < 0.05 and 0.03 < X.mean() < 0.3   # bright ink on black
    np.testing.assert_array_equal(X, load_letters28(6, return_X_y=True)[0])  # deterministic
    assert not np.array_equal(X, load_letters28(6, random_state=1, return_X_y=True)[0])
    assert list(load_letters28(1).target_names[:3]) == ["A", "B", "C"]
    N = load_natural28(50, random_state=3)
    assert N.shape == (50, 1, 28, 28) and N.std() > 0.1
    np.testing.assert_array_equal(N, load_natural28(50, random_state=3))
    with pytest.raises(ValueError):
        load_letters28(0)
    with pytest.raises(ValueError):
        load_natural28(0)
