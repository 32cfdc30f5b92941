"""skgradunc.conformal: p-values against a brute-force count, their marginal validity and
Benjamini-Hochberg's false discovery rate by simulation, and the calibrated reject rule."""

import functools
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.covariance import EllipticEnvelope
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from skgradunc.conformal import ConformalDetector, benjamini_hochberg, conformal_pvalues
from skgradunc.detectors import MahalanobisDetector


def _reference_pvalues(calibration, test):
    return np.array([(1 + sum(c <= t for c in calibration)) / (len(calibration) + 1)
                     for t in test])


def _reference_bh(p, alpha):
    """The textbook step-up: the largest k with p_(k) <= k alpha / m, by a loop."""
    m, order = len(p), np.argsort(p)
    k = 0
    for rank in range(1, m + 1):
        if p[order[rank - 1]] <= rank * alpha / m:
            k = rank
    flagged = np.zeros(m, bool)
    flagged[order[:k]] = True
    return flagged


def test_pvalues_are_the_published_count_ties_included():
    rng = np.random.default_rng(0)
    calibration = rng.integers(0, 10, 57).astype(float)    # many ties
    test = np.r_[rng.integers(-2, 12, 40), calibration[:5]].astype(float)
    np.testing.assert_array_equal(conformal_pvalues(calibration, test),
                                  _reference_pvalues(calibration, test))


def test_randomised_pvalues_break_ties_within_the_deterministic_bounds():
    calibration, test = np.array([1.0, 2.0, 2.0, 3.0]), np.array([2.0] * 2000)
    p = conformal_pvalues(calibration, test, random_state=0)
    assert p.min() >= 1 / 5 and p.max() <= 4 / 5 + 1e-12     # (#< + U(1 + #=)) / (n + 1)
    assert p.mean() == pytest.approx(2.5 / 5, abs=0.01)
    np.testing.assert_array_equal(p, conformal_pvalues(calibration, test, random_state=0))


@pytest.mark.parametrize("random_state", [None, 0])
def test_pvalues_are_marginally_valid_by_simulation(random_state):
    """P(p <= a) <= a for in-distribution inputs, over 2,000 fresh calibration sets of 49
    (deterministic p-values are exactly floor(a (n+1)) / (n+1) for continuous scores; the
    randomised ones exactly a); tolerance 4 Monte-Carlo standard errors."""
    rng = np.random.default_rng(1)
    repetitions, n, m = 2000, 49, 50
    levels = np.array([0.02, 0.05, 0.1, 0.2, 0.5])
    hits = np.zeros((repetitions, len(levels)))
    for r in range(repetitions):
        p = conformal_pvalues(rng.normal(size=n), rng.normal(size=m),
                              random_state=None if random_state is None else r)
        hits[r] = (p[:, None] <= levels).mean(axis=0)
    rate, error = hits.mean(axis=0), hits.std(axis=0, ddof=1) / np.sqrt(repetitions)
    exact = np.floor(levels * (n + 1)) / (n + 1) if random_state is None else levels
    assert (rate <= levels + 4 * error).all(), (rate, levels)
    np.testing.assert_array_less(np.abs(rate - exact), 4 * error + 1e-12)


def test_benjamini_hochberg_is_the_step_up_procedure():
    rng = np.random.default_rng(2)
    for _ in range(200):
        p = np.r_[rng.uniform(size=30), rng.uniform(0, 0.02, size=rng.integers(0, 10))]
        p = np.round(p, 2)                                            # ties as well
        for alpha in (0.05, 0.1, 0.3):
            np.testing.assert_array_equal(benjamini_hochberg(p, alpha), _reference_bh(p, alpha))


def test_benjamini_hochberg_on_conformal_pvalues_controls_the_fdr_by_simulation():
    """1,000 repetitions, each a fresh calibration set of 200 in-distribution scores and a
    batch of 90 inliers + 10 outliers (shifted down by 3): the mean false discovery
    proportion is at most alpha m0 / m = 0.09 within 4 Monte-Carlo standard errors, and
    the procedure has power (finds most outliers)."""
    rng = np.random.default_rng(3)
    alpha, repetitions = 0.1, 1000
    fdp, power = np.empty(repetitions), np.empty(repetitions)
    for r in range(repetitions):
        calibration = rng.normal(size=200)
        test = np.r_[rng.normal(size=90), rng.normal(-3.0, 1.0, size=10)]
        flagged = benjamini_hochberg(conformal_pvalues(calibration, test), alpha)
        fdp[r] = flagged[:90].sum() / max(flagged.sum(), 1)
        power[r] = flagged[90:].mean()
    bound = alpha * 90 / 100
    assert fdp.mean() <= bound + 4 * fdp.std(ddof=1) / np.sqrt(repetitions), fdp.mean()
    assert fdp.mean() > 0.02              # not vacuous: the procedure does take risks
    assert power.mean() > 0.5


@pytest.mark.parametrize("bad, message", [
    (([], [1.0]), "calibration_scores is empty"),
    (([1.0, np.nan], [1.0]), r"calibration_scores contains NaN or infinity \(first at sample 1\)"),
    (([1.0], [[1.0]]), "test_scores must be 1-D"),
])
def test_pvalues_refuse_bad_scores_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        conformal_pvalues(*bad)


@pytest.mark.parametrize("p, alpha, message", [
    ([0.1, 1.2], 0.1, r"pvalues must lie in \[0, 1\]; sample 1"),
    ([0.1], 0.0, "alpha must be a fraction"),
    ([0.1], True, "alpha must be a fraction"),
])
def test_benjamini_hochberg_refuses_bad_input(p, alpha, message):
    with pytest.raises(ValueError, match=message):
        benjamini_hochberg(p, alpha)


def _fitted_scorer(seed=0):
    X = np.random.default_rng(seed).normal(size=(400, 3))
    return EllipticEnvelope(random_state=0).fit(X)


def test_a_threshold_at_95_percent_keeps_95_percent_of_fresh_in_distribution_inputs():
    """Over 300 calibration draws of 100 held-out inputs, the acceptance rate on fresh
    in-distribution inputs averages in [tpr, tpr + 1/(n+1)] (the split-conformal bounds)
    within 4 Monte-Carlo standard errors; one calibration of 2,000 inputs gives 95 % on
    20,000 fresh ones within 4 standard errors of both draws (about 2 points)."""
    rng = np.random.default_rng(4)
    scorer = _fitted_scorer()
    fresh = rng.normal(size=(20000, 3))
    fresh_scores = scorer.decision_function(fresh)     # the confidence "auto" reads
    rates = []
    for _ in range(300):
        detector = ConformalDetector(scorer, tpr=0.95).fit(rng.normal(size=(100, 3)))
        rates.append(np.mean(fresh_scores >= detector.offset_))
    rates = np.array(rates)
    error = rates.std(ddof=1) / np.sqrt(len(rates))
    assert 0.95 - 4 * error <= rates.mean() <= 0.95 + 1 / 101 + 4 * error
    detector = ConformalDetector(scorer, tpr=0.95).fit(rng.normal(size=(2000, 3)))
    kept = (detector.predict(fresh) == 1).mean()
    # the calibration draw's spread and the fresh sample's, both binomial
    assert abs(kept - 0.95) <= 4 * np.sqrt(0.95 * 0.05 * (1 / 2000 + 1 / len(fresh))) + 1 / 2001


def test_predict_accepts_exactly_where_the_pvalue_exceeds_one_minus_tpr():
    rng = np.random.default_rng(5)
    scorer = _fitted_scorer()
    for n, tpr in [(19, 0.9), (100, 0.95), (57, 0.8), (20, 0.95), (399, 0.9), (150, 0.99)]:
        detector = ConformalDetector(scorer, tpr=tpr).fit(rng.normal(size=(n, 3)))
        X = np.r_[rng.normal(size=(300, 3)), rng.normal(size=(100, 3)) * 3]
        k = int(np.floor(round((1 - tpr) * (n + 1), 6)))    # the rank, exact for these
        np.testing.assert_array_equal(detector.predict(X) == 1,
                                      detector.pvalues(X) > k / (n + 1))


def test_every_kind_of_confidence_the_package_gives_becomes_a_reject_rule():
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(300, 4)), rng.integers(0, 2, 300)
    meta = LogisticRegression().fit(X, y)                     # P(correct): class 1
    detector = ConformalDetector(meta, tpr=0.9).fit(X[:100])
    np.testing.assert_allclose(detector.score_samples(X), meta.predict_proba(X)[:, 1])
    scorer = MahalanobisDetector().fit(X, y)       # an outlier detector: decision_function
    np.testing.assert_allclose(ConformalDetector(scorer).fit(X[:100]).score_samples(X),
                               scorer.decision_function(X))
    chosen = ConformalDetector(scorer, response_method="score_samples").fit(X[:100])
    np.testing.assert_allclose(chosen.score_samples(X), scorer.score_samples(X))
    multi = LogisticRegression().fit(X, rng.integers(0, 3, 300))   # softmax maximum
    softmax = ConformalDetector(multi, response_method="max_proba").fit(X[:100])
    np.testing.assert_allclose(softmax.score_samples(X), multi.predict_proba(X).max(axis=1))
    function = ConformalDetector(functools.partial(np.sum, axis=1)).fit(X[:100])
    np.testing.assert_allclose(function.score_samples(X), X.sum(axis=1))
    with pytest.raises(ValueError, match="response_method='max_proba'"):
        ConformalDetector(multi, response_method="predict_proba").fit(X[:100])


def test_the_estimator_is_used_as_fitted_and_clone_needs_it_frozen():
    scorer = _fitted_scorer()
    X = np.random.default_rng(7).normal(size=(100, 3))
    with pytest.raises(NotFittedError, match="FrozenEstimator"):
        clone(ConformalDetector(scorer)).fit(X)
    frozen = clone(ConformalDetector(FrozenEstimator(scorer))).fit(X)
    np.testing.assert_array_equal(frozen.score_samples(X), scorer.decision_function(X))


@pytest.mark.parametrize("tpr, needed", [(0.9, 9), (0.8, 4), (0.95, 19), (0.99, 99)])
def test_the_warning_names_the_smallest_calibration_set_that_rejects(tpr, needed):
    scorer = _fitted_scorer()
    X = np.random.default_rng(9).normal(size=(needed, 3))
    with pytest.warns(UserWarning, match=f"at least {needed} are needed"):
        ConformalDetector(scorer, tpr=tpr).fit(X[:-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detector = ConformalDetector(scorer, tpr=tpr).fit(X)
    assert detector.offset_ == detector.calibration_scores_[0]      # k = 1


def test_too_few_calibration_inputs_warn_that_nothing_is_rejected():
    scorer = _fitted_scorer()
    X = np.random.default_rng(8).normal(size=(18, 3))
    with pytest.warns(UserWarning, match="18 calibration inputs cannot reject anything at "
                                         r"tpr=0.95: at least 19"):
        detector = ConformalDetector(scorer, tpr=0.95).fit(X)
    assert (detector.predict(X * 100) == 1).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConformalDetector(scorer, tpr=0.95).fit(np.r_[X, X[:1]])      # 19 suffice


@pytest.mark.parametrize("params, message", [
    ({"tpr": 1.0}, "tpr must be a fraction"), ({"tpr": "0.9"}, "tpr must be a fraction"),
    ({"response_method": "predict"}, "response_method must be"),
])
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        ConformalDetector(_fitted_scorer(), **params).fit(np.zeros((30, 3)))


def test_unfitted_detector_and_non_finite_scores_are_refused():
    for method in ("predict", "pvalues", "score_samples", "decision_function"):
        with pytest.raises(NotFittedError):
            getattr(ConformalDetector(_fitted_scorer()), method)(np.zeros((2, 3)))
    detector = ConformalDetector(lambda X: np.where(X[:, 0] > 0, np.nan, 1.0))
    with pytest.raises(ValueError, match="NaN or infinite scores \\(first at sample 1\\)"):
        detector.fit(np.array([[-1.0], [1.0]]))
