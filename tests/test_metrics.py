import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import cross_val_score

from skgradunc import metrics


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.8).astype(int)            # 80 % correct, like a decent CNN
    confidence = y * 0.6 + rng.normal(0, 0.5, 300)
    return y, confidence


def test_against_sklearn_by_hand(scored):
    y, c = scored
    assert metrics.auroc(y, c) == pytest.approx(roc_auc_score(y, c))
    assert metrics.aupr_in(y, c) == pytest.approx(average_precision_score(y, c))
    # AUPR-Out: wrong predictions are the positive class, scored by the negated confidence
    assert metrics.aupr_out(y, c) == pytest.approx(average_precision_score(1 - y, -c))
    assert metrics.aupr_in(y, c) != pytest.approx(metrics.aupr_out(y, c))


def test_fpr_at_95_tpr_by_hand(scored):
    y, c = scored
    # smallest threshold set that accepts >= 95 % of the correct predictions
    thresholds = np.sort(np.unique(c))[::-1]
    for t in thresholds:
        if (c[y == 1] >= t).mean() >= 0.95:
            expected = (c[y == 0] >= t).mean()
            break
    assert metrics.fpr_at_tpr(y, c) == pytest.approx(expected)
    assert metrics.fpr_at_tpr(y, c, tpr=1.0) >= metrics.fpr_at_tpr(y, c, tpr=0.5)


def test_fpr_at_95_tpr_with_wrong_as_positive_by_hand(scored):
    """OpenOOD's / pytorch-ood's convention: flag by low confidence until 95 % of the
    wrong / OoD inputs are flagged; the score is the fraction of correct ones flagged."""
    y, c = scored
    c = np.round(c, 1)                     # ties: a threshold flags all equal scores at once
    for t in np.sort(np.unique(c)):       # flag c <= t, lowest thresholds first
        if (c[y == 0] <= t).mean() >= 0.95:
            expected = (c[y == 1] <= t).mean()
            break
    assert metrics.fpr_at_95_tpr_out(y, c) == pytest.approx(expected)
    assert metrics.fpr_at_tpr(y, c, positive="wrong") == pytest.approx(expected)
    assert metrics.fpr_at_95_tpr_in(y, c) == metrics.fpr_at_tpr(y, c)
    assert metrics.fpr_at_95_tpr_in(y, c) != pytest.approx(expected)   # they differ
    with pytest.raises(ValueError, match="positive must be 'correct' or 'wrong'"):
        metrics.fpr_at_tpr(y, c, positive="ood")


def _ece_by_loop(y, p, n_bins):
    """Written out: equal-width bins, the right edge of each bin inclusive (0 in the first)."""
    total = 0.0
    for b in range(n_bins):
        low, high = b / n_bins, (b + 1) / n_bins
        inside = (p > low) & (p <= high) if b else (p <= high)
        if inside.any():
            total += inside.sum() / len(p) * abs(y[inside].mean() - p[inside].mean())
    return total


def test_expected_calibration_error_by_hand_and_by_calibration_curve(scored):
    from sklearn.calibration import calibration_curve
    y, c = scored
    p = 1 / (1 + np.exp(-3 * c))
    for n_bins in (1, 10, 15):
        ece = metrics.expected_calibration_error(y, p, n_bins=n_bins)
        assert ece == pytest.approx(_ece_by_loop(y, p, n_bins))
    # the same bins as scikit-learn's reliability curve: weighted by the bins' counts
    true, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    counts = np.bincount(np.searchsorted(np.percentile(p, np.linspace(0, 100, 11))[1:-1], p))
    assert metrics.expected_calibration_error(y, p, 10, "quantile") == pytest.approx(
        np.sum(counts[counts > 0] / len(p) * np.abs(true - predicted)))
    assert metrics.expected_calibration_error(y, y.astype(float)) == 0.0
    for bad, match in [(p + 1, r"in \[0, 1\]"), (p, "n_bins"), (p, "strategy")]:
        kwargs = {"n_bins": 0} if match == "n_bins" else (
            {"strategy": "kmeans"} if match == "strategy" else {})
        with pytest.raises(ValueError, match=match):
            metrics.expected_calibration_error(y, bad, **kwargs)


def test_perfect_and_reversed_confidence():
    y = np.array([0, 0, 1, 1, 1])
    c = np.array([0.1, 0.2, 0.7, 0.8, 0.9])
    assert metrics.auroc(y, c) == 1 and metrics.aupr_in(y, c) == 1 and metrics.aupr_out(y, c) == 1
    assert metrics.fpr_at_tpr(y, c) == 0
    assert metrics.auroc(y, -c) == 0
    assert metrics.auroc(y.astype(bool), c) == 1


@pytest.mark.parametrize("y, c, match", [
    ([0, 1, 1], [0.1, 0.2], "has 3 values but confidence has 2"),
    ([1, 1, 1], [0.1, 0.2, 0.3], "one class only"),
    ([0, 1, 2], [0.1, 0.2, 0.3], "0 \\(wrong / OoD\\) or 1"),
    ([0, 1, 1], [0.1, np.nan, 0.3], "NaN"),
    ([[0, 1]], [[0.1, 0.2]], "1-D"),
])
def test_bad_input(y, c, match):
    with pytest.raises(ValueError, match=match):
        metrics.auroc(y, c)


def test_fpr_at_tpr_bad_rate(scored):
    with pytest.raises(ValueError, match="tpr"):
        metrics.fpr_at_tpr(*scored, tpr=1.5)


def test_scorers_in_cross_validation(scored):
    y, c = scored
    X = c[:, None]
    model = LogisticRegression()
    for name in ("auroc", "aupr_in", "aupr_out"):
        scores = cross_val_score(model, X, y, cv=3, scoring=metrics.scorer(name))
        assert np.all((scores > 0.3) & (scores <= 1)), name
    fpr = cross_val_score(model, X, y, cv=3, scoring=metrics.scorer("fpr_at_95tpr"))
    assert np.all(fpr <= 0)  # lower-is-better scores are negated, as sklearn wants
    fitted = model.fit(X, y)
    assert metrics.scorer("aupr_out")(fitted, X, y) == pytest.approx(
        metrics.aupr_out(y, fitted.predict_proba(X)[:, 1]))
    with pytest.raises(ValueError, match="unknown score"):
        metrics.scorer("accuracy")
