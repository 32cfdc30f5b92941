import numpy as np
import pytest
import torch
from sklearn.frozen import FrozenEstimator

from skgradunc import append_out_of_distribution, correctness_target
from skgradunc.datasets import make_noise


def test_matches_predictions_for_net_frozen_and_module(fitted_net, digits_split):
    X, y = digits_split[2][:100], digits_split[3][:100]
    expected = (fitted_net.predict(X) == y).astype(int)
    assert 0 < expected.mean() < 1
    for estimator in (fitted_net, FrozenEstimator(fitted_net), fitted_net.module_):
        np.testing.assert_array_equal(correctness_target(estimator, X, y), expected)


def test_out_of_distribution_rows_are_zero(fitted_net, digits_split):
    X, y = digits_split[2][:20], digits_split[3][:20]
    X_all, y_all = append_out_of_distribution(X, y, make_noise(5, random_state=0))
    target = correctness_target(fitted_net, X_all, y_all)
    assert target.shape == (25,) and target.dtype == np.int64
    np.testing.assert_array_equal(target[20:], 0)
    np.testing.assert_array_equal(target[:20], fitted_net.predict(X) == y)
    np.testing.assert_array_equal(correctness_target(fitted_net, X[:3], [-1, -1, -1]), 0)


def test_module_keeps_its_mode():
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5)).train()
    correctness_target(module, np.ones((2, 3), np.float32), [0, 1])
    assert module.training and module[1].training


@pytest.mark.parametrize("y, match", [
    (np.arange(19) % 10, "19 labels but X has 20"),
    (np.full(20, 12), r"does not know: \[12\]"),
    (np.full(20, np.nan), "NaN"),
    (np.zeros((20, 2)), "1-D"),
])
def test_bad_targets(fitted_net, digits_split, y, match):
    with pytest.raises(ValueError, match=match):
        correctness_target(fitted_net, digits_split[2][:20], y)


def test_not_a_classifier():
    with pytest.raises(TypeError, match="no predict method"):
        correctness_target(object(), np.zeros((1, 2)), [0])


def test_append_out_of_distribution_checks_shapes():
    with pytest.raises(ValueError, match="shape"):
        append_out_of_distribution(np.zeros((2, 1, 28, 28)), [0, 1], np.zeros((2, 1, 20, 20)))
    with pytest.raises(ValueError, match="labels"):
        append_out_of_distribution(np.zeros((2, 3)), [0], np.zeros((2, 3)))


def test_dataframe_rows_are_selected_by_position_with_ood_labels():
    """Before: X[rows] on a DataFrame selected columns."""
    import pandas as pd
    net = torch.nn.Linear(2, 3)
    X = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [2.0, 0.0]], dtype=np.float32)
    y = np.array([0, -1, -1, 0])
    expected = correctness_target(net, X, y)
    frame = pd.DataFrame(X, columns=["a", "b"], index=[10, 11, 12, 13])
    np.testing.assert_array_equal(correctness_target(net, frame, y), expected)


class InPlace(torch.nn.Module):
    """Doubles its input in place before using it."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.linear(x.mul_(2))


def test_the_callers_X_is_never_changed():
    X = np.random.rand(5, 3).astype(np.float32)
    before, net, y = X.copy(), InPlace(), [0, 1, 0, 1, 0]
    first = correctness_target(net, X, y)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(correctness_target(net, X, y), first)


@pytest.mark.parametrize("X_dtype, ood_dtype", [(np.float32, np.uint8), (np.uint8, np.float32),
                                                (np.float64, np.uint8)])
def test_append_out_of_distribution_reads_uint8_as_images_in_0_255(X_dtype, ood_dtype):
    """Before: uint8 OoD images appended to float data kept 0-255; float ones appended to
    uint8 data were truncated to 0/1."""
    rng = np.random.RandomState(0)
    as_float = rng.rand(4, 1, 3, 3).astype(np.float32)
    as_bytes = (rng.rand(2, 1, 3, 3) * 255).astype(np.uint8)
    X = as_float.astype(X_dtype) if X_dtype != np.uint8 else as_bytes
    X_ood = as_bytes if ood_dtype == np.uint8 else as_float
    X_all, y_all = append_out_of_distribution(X, [0] * len(X), X_ood)
    assert X_all.dtype.kind == "f" and X_all.max() <= 1
    expected = [x.astype(np.float32) / 255 if x.dtype == np.uint8 else x for x in (X, X_ood)]
    np.testing.assert_allclose(X_all, np.concatenate(expected), rtol=1e-6)
    # the same dtype on both sides stays as it is
    X_same, _ = append_out_of_distribution(as_bytes, [0, 1], as_bytes)
    assert X_same.dtype == np.uint8


def test_append_out_of_distribution_refuses_ambiguous_dtypes():
    with pytest.raises(TypeError, match="int64"):
        append_out_of_distribution(np.zeros((2, 3), np.float32), [0, 1],
                                   np.zeros((1, 3), np.int64))
