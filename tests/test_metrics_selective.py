"""Selective classification: AURC against a loop over the inputs, AUGRC against Traub et
al.'s closed form with scikit-learn's AUROC, risk / coverage at a point, the scorers, and
RiskCoverageDisplay."""

import matplotlib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score

from skgradunc import metrics

matplotlib.use("Agg")


def _scored(seed, n=300, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.85).astype(int)
    confidence = y * 0.8 + rng.normal(0, 0.6, n)
    return y, np.round(confidence, 1) if ties else confidence


def _aurc_by_loop(y, c):
    """Geifman & El-Yaniv: accept the k most confident, average the risk over k = 1..n."""
    order = np.argsort(-c)
    risks = [np.mean(1 - y[order[:k]]) for k in range(1, len(y) + 1)]
    return np.mean(risks)


@pytest.mark.parametrize("seed", range(5))
def test_aurc_is_the_mean_selective_risk_over_the_ranked_inputs(seed):
    y, c = _scored(seed)
    assert metrics.aurc(y, c) == pytest.approx(_aurc_by_loop(y, c), rel=1e-12)


def test_aurc_with_ties_accepts_each_block_at_once():
    # blocks {0.9: 1, 1}, {0.5: 1, 0}, {0.1: 0}: risks 0, 1/4, 2/5 over coverages 2/5, 4/5, 1
    y, c = [1, 1, 1, 0, 0], [0.9, 0.9, 0.5, 0.5, 0.1]
    assert metrics.aurc(y, c) == pytest.approx(2 / 5 * 0 + 2 / 5 * 1 / 4 + 1 / 5 * 2 / 5)


@pytest.mark.parametrize("seed, ties", [(0, False), (1, False), (2, True), (3, True)])
def test_augrc_is_traubs_closed_form(seed, ties):
    """AUGRC = (1 - AUROC) acc (1 - acc) + (1 - acc)^2 / 2 (Traub et al. 2024, Eq. 4),
    with ties as scikit-learn's AUROC counts them (half)."""
    y, c = _scored(seed, ties=ties)
    accuracy = y.mean()
    closed_form = ((1 - roc_auc_score(y, c)) * accuracy * (1 - accuracy)
                   + (1 - accuracy) ** 2 / 2)
    assert metrics.augrc(y, c) == pytest.approx(closed_form, rel=1e-12)


def test_perfect_and_reversed_rankings():
    y = np.r_[np.ones(8), np.zeros(2)].astype(int)
    best, worst = np.arange(10)[::-1], np.arange(10)
    # perfect: risk 0 until the 8 correct are in, then 1/9 and 2/10
    assert metrics.aurc(y, best) == pytest.approx((1 / 9 + 2 / 10) / 10)
    assert metrics.augrc(y, best) == pytest.approx(0.2 ** 2 / 2)
    assert metrics.aurc(y, worst) > metrics.aurc(y, best)
    assert metrics.augrc(y, worst) == pytest.approx(0.8 * 0.2 + 0.2 ** 2 / 2)


def test_the_curve_and_its_points():
    y, c = [1, 0, 1, 1, 0, 1], [0.9, 0.8, 0.8, 0.6, 0.3, 0.2]
    coverage, risk, generalized, thresholds = metrics.risk_coverage_curve(y, c)
    np.testing.assert_allclose(coverage, [1 / 6, 3 / 6, 4 / 6, 5 / 6, 1])
    np.testing.assert_allclose(risk, [0, 1 / 3, 1 / 4, 2 / 5, 2 / 6])
    np.testing.assert_allclose(generalized, [0, 1 / 6, 1 / 6, 2 / 6, 2 / 6])
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.6, 0.3, 0.2])
    assert metrics.risk_at_coverage(y, c, 0.5) == pytest.approx(1 / 3)
    assert metrics.risk_at_coverage(y, c, 0.4) == pytest.approx(1 / 3)   # the tie carries it
    assert metrics.risk_at_coverage(y, c, 1.0) == pytest.approx(1 / 3)
    assert metrics.coverage_at_risk(y, c, 0.3) == pytest.approx(4 / 6)
    assert metrics.coverage_at_risk(y, c, 0.0) == pytest.approx(1 / 6)
    assert metrics.coverage_at_risk([0, 1], [0.9, 0.1], 0.2) == 0.0


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.risk_at_coverage([1, 0], [0.1, 0.2], 0.0), r"coverage must be .* \(0, 1\]"),
    (lambda: metrics.coverage_at_risk([1, 0], [0.1, 0.2], 1.5), r"risk must be .* \[0, 1\]"),
    (lambda: metrics.aurc([1, 0], [0.1, np.inf]), "NaN or infinity"),
    (lambda: metrics.augrc([1, 1], [0.1, 0.2]), "one class only"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_selective_scorers_in_cross_validation():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + rng.normal(0, 0.5, 200) > -1).astype(int)
    for name, function in (("aurc", metrics.aurc), ("augrc", metrics.augrc)):
        scores = cross_val_score(LogisticRegression(), X, y, cv=3, scoring=metrics.scorer(name))
        assert (scores < 0).all()                       # lower is better: negated
        model = LogisticRegression().fit(X[:100], y[:100])
        assert metrics.scorer(name)(model, X[100:], y[100:]) == pytest.approx(
            -function(y[100:], model.predict_proba(X[100:])[:, 1]))


def test_risk_coverage_display_draws_the_steps_the_aurc_sums():
    y, c = _scored(0, n=60)
    display = metrics.RiskCoverageDisplay.from_predictions(y, c, name="softmax")
    x, h = display.line_.get_data()
    coverage, risk, _, _ = metrics.risk_coverage_curve(y, c)
    np.testing.assert_allclose(x[1:], coverage)
    np.testing.assert_allclose(h[1:], risk)
    assert display.aurc == pytest.approx(metrics.aurc(y, c))
    assert display.line_.get_label() == f"softmax (AURC = {metrics.aurc(y, c):.3f})"
    assert display.ax_.get_xlabel().startswith("Coverage")
    assert display.figure_ is display.ax_.figure
    display.plot(ax=display.ax_, name="again")          # re-plot on the same axes
    assert len(display.ax_.lines) == 2


def test_risk_coverage_display_from_estimator_reads_the_confidence():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 3))
    y = (X[:, 0] > -0.5).astype(int)
    model = LogisticRegression().fit(X, y)
    display = metrics.RiskCoverageDisplay.from_estimator(model, X, y)
    expected = metrics.RiskCoverageDisplay.from_predictions(y, model.predict_proba(X)[:, 1])
    np.testing.assert_allclose(display.coverage, expected.coverage)
    np.testing.assert_allclose(display.risk, expected.risk)
    assert display.line_.get_label().startswith("LogisticRegression (AURC")
    softmax = metrics.RiskCoverageDisplay.from_estimator(
        LogisticRegression().fit(X, rng.integers(0, 3, 150)), X, y,
        response_method="max_proba", name="max softmax")
    assert softmax.line_.get_label().startswith("max softmax")
