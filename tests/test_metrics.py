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
