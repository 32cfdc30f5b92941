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
