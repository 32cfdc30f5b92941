"""Decisions with the tools users already have, on this package's estimators: scikit-learn's
FixedThresholdClassifier and TunedThresholdClassifierCV over a meta classifier, MAPIE's
prediction sets over a fitted CNNClassifier and its binary risk control over a meta
classifier's P(correct) (the ``mapie`` extra, part of ``test``)."""

import numpy as np
import pytest
from mapie.classification import SplitConformalClassifier
from mapie.risk_control import BinaryClassificationController
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

from skgradunc import GradientMetricTransformer, MetaClassifier, correctness_target
from skgradunc.conformal import ConformalDetector


@pytest.fixture(scope="module")
def held_out(fitted_net, digits):
    """The digits the session's network never saw (rows 900 on of its permutation):
    images, classes, gradient metrics, and whether the network is right."""
    X, y = digits
    rows = np.random.RandomState(0).permutation(len(X))[900:]
    X, y = X[rows], y[rows]
    features = GradientMetricTransformer(fitted_net, device="cpu").fit_transform(X)
    return X, y, features, correctness_target(fitted_net, X, y)


@pytest.fixture(scope="module")
def meta(fitted_net, digits_split):
    """A LASSO meta classifier trained on the digits_split test part (not held_out)."""
    _, _, X, y = digits_split
    features = GradientMetricTransformer(fitted_net, device="cpu").fit_transform(X)
    correct = correctness_target(fitted_net, X, y)
    return MetaClassifier("lasso", random_state=0).fit(features, correct)


def test_a_fixed_threshold_on_p_correct_is_scikit_learns(meta, held_out):
    _, _, features, _ = held_out
    p = meta.predict_proba(features)[:, 1]
    threshold = float(np.quantile(p, 0.3))
    rule = FixedThresholdClassifier(FrozenEstimator(meta), threshold=threshold,
                                    response_method="predict_proba")
    rule.fit(features[:5], [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(rule.predict(features), (p >= threshold).astype(int))


def test_a_tuned_threshold_wraps_a_meta_classifier(held_out):
    _, _, features, correct = held_out
    tuned = TunedThresholdClassifierCV(MetaClassifier("lasso", random_state=0),
                                       scoring="balanced_accuracy", cv=3).fit(features, correct)
    assert 0 < tuned.best_threshold_ < 1
    # refitted on all the data, it predicts "correct" where that P(correct) reaches the
    # threshold cross-validation chose, and that threshold beats the default 0.5 there
    refit = MetaClassifier("lasso", random_state=0).fit(features, correct)
    p = refit.predict_proba(features)[:, 1]
    np.testing.assert_array_equal(tuned.predict(features), (p >= tuned.best_threshold_))
    assert tuned.best_score_ > 0.5


def test_the_conformal_detector_and_fixed_threshold_agree_at_its_offset(meta, held_out):
    """ConformalDetector's calibrated threshold, handed to FixedThresholdClassifier,
    accepts the same inputs."""
    _, _, features, correct = held_out
    detector = ConformalDetector(meta, tpr=0.9).fit(features[:400][correct[:400] == 1])
    rule = FixedThresholdClassifier(FrozenEstimator(meta), threshold=detector.offset_,
                                    response_method="predict_proba")
    rule.fit(features[:5], [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(rule.predict(features[400:]) == 1,
                                  detector.predict(features[400:]) == 1)


class _RowsOf(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose inputs are row numbers of fixed probabilities: MAPIE's
    repetitions without the network's forward pass each time."""

    def __init__(self, proba=None):
        self.proba = proba

    def fit(self, X=None, y=None):
        self.classes_ = np.arange(self.proba.shape[1])
        return self

    def predict_proba(self, rows):
        return self.proba[np.asarray(rows).ravel()]

    def predict(self, rows):
        return self.predict_proba(rows).argmax(axis=1)


def test_mapie_prediction_sets_reach_their_coverage_on_held_out_digits(fitted_net, held_out):
    """SplitConformalClassifier(prefit=True) over the fitted CNNClassifier gives the sets
    of the same network's cached probabilities; over 200 random halvings of the 897
    held-out digits (conformalize on one half, cover the other) their mean coverage lies
    within [0.9, 0.9 + 1/(n+1)] +- 4 Monte-Carlo standard errors."""
    X, y, _, _ = held_out
    rows = _RowsOf(fitted_net.predict_proba(X)).fit()
    on_network = SplitConformalClassifier(estimator=fitted_net, confidence_level=0.9,
                                          prefit=True).conformalize(X[:448], y[:448])
    on_rows = SplitConformalClassifier(estimator=rows, confidence_level=0.9,
                                       prefit=True)
    on_rows.conformalize(np.arange(448)[:, None], y[:448])
    np.testing.assert_array_equal(on_network.predict_set(X[448:])[1],
                                  on_rows.predict_set(np.arange(448, len(X))[:, None])[1])
    coverage = []
    rng = np.random.default_rng(0)
    for _ in range(200):
        order = rng.permutation(len(X))[:, None]
        calibration, test = order[:448], order[448:]
        mapie = SplitConformalClassifier(estimator=rows, confidence_level=0.9, prefit=True)
        _, sets = mapie.conformalize(calibration, y[calibration[:, 0]]).predict_set(test)
        coverage.append(sets[np.arange(len(test)), y[test[:, 0]], 0].mean())
    coverage = np.array(coverage)
    error = coverage.std(ddof=1) / np.sqrt(len(coverage))
    assert 0.9 - 4 * error <= coverage.mean() <= 0.9 + 1 / 449 + 4 * error, coverage.mean()


def test_mapie_risk_control_keeps_the_precision_of_accept(meta, held_out):
    """BinaryClassificationController over the meta classifier's P(correct), target
    precision 0.97 of "accept" at confidence 0.9, over 30 random halvings of the held-out
    digits: the accepted inputs' precision on the other half, pooled, reaches the target,
    and no more than 3 in 10 repetitions fall below it by more than 2 binomial standard
    errors (the guarantee holds with probability 0.9)."""
    _, _, features, correct = held_out
    rng = np.random.default_rng(1)
    hits, accepted, misses = 0, 0, 0
    for _ in range(30):
        order = rng.permutation(len(features))
        calibration, test = order[:448], order[448:]
        controller = BinaryClassificationController(
            predict_function=meta.predict_proba, risk="precision", target_level=0.97,
            confidence_level=0.9)
        controller.calibrate(features[calibration], correct[calibration])
        accept = controller.predict(features[test]).astype(bool)
        precision = correct[test][accept].mean() if accept.any() else 1.0
        n = max(accept.sum(), 1)
        misses += precision < 0.97 - 2 * np.sqrt(0.97 * 0.03 / n)
        hits += correct[test][accept].sum()
        accepted += accept.sum()
    assert accepted > 0
    assert hits / accepted >= 0.97 - 2 * np.sqrt(0.97 * 0.03 / accepted)
    assert misses <= 9
    assert correct.mean() < 0.97        # not met by accepting everything
