"""Temperature scaling of cached logits (experiments/temperature.py) is scikit-learn's: the
temperature minimises the validation NLL (scipy on the same logits), the predictions are
unchanged, and an over-confident network's ECE falls."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from skgradunc import metrics
from skgradunc.experiments.temperature import temperature_scaling


def _overconfident(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    logits = rng.normal(0, 1, (n, 5))
    logits[np.arange(n), y] += 1.5
    return 4.0 * logits, y           # sharpened fourfold: over-confident


def test_the_temperature_minimises_the_validation_nll_and_calibrates():
    val_logits, y_val = _overconfident(3000, 0)
    test_logits, y_test = _overconfident(3000, 1)
    arrays = {"validation__logits": val_logits, "test__logits": test_logits}
    probabilities, temperature = temperature_scaling(arrays, y_val)

    def nll(log_t):
        log_p = log_softmax(val_logits / np.exp(log_t), axis=1)
        return -log_p[np.arange(len(y_val)), y_val].mean()
    assert temperature == pytest.approx(np.exp(minimize_scalar(nll).x), rel=1e-4)
    np.testing.assert_allclose(probabilities("test"),
                               softmax(test_logits / temperature, axis=1), rtol=1e-6, atol=1e-12)
    before, after = softmax(test_logits, axis=1), probabilities("test")
    np.testing.assert_array_equal(before.argmax(1), after.argmax(1))
    correct = (before.argmax(1) == y_test).astype(int)
    assert (metrics.expected_calibration_error(correct, after.max(1))
            < 0.5 * metrics.expected_calibration_error(correct, before.max(1)))


def test_a_fitted_cnn_is_temperature_scaled_by_scikit_learn_directly(fitted_net, digits_split):
    """What the docs show users: CalibratedClassifierCV(FrozenEstimator(net),
    method="temperature") on held-out digits keeps the network's predictions and scales
    its log-probabilities by one factor."""
    _, _, X, y = digits_split
    calibrated = CalibratedClassifierCV(FrozenEstimator(fitted_net), method="temperature")
    calibrated.fit(X[:150], y[:150])
    np.testing.assert_array_equal(calibrated.predict(X[150:]), fitted_net.predict(X[150:]))
    beta = calibrated.calibrated_classifiers_[0].calibrators[0].beta_
    log_p = np.log(fitted_net.predict_proba(X[150:]).astype(np.float64))
    np.testing.assert_allclose(calibrated.predict_proba(X[150:]),
                               softmax(beta * log_p, axis=1), rtol=1e-4, atol=1e-7)
