"""OneVsAllClassifier: UQGAN's one-vs-all baseline as a skorch/sklearn classifier."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skgradunc import OneVsAllClassifier
from skgradunc.uqgan._losses import class_probabilities


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    clf = OneVsAllClassifier(max_epochs=4, random_state=0, verbose=0, device="cpu")
    return clf.fit(X[:400], y[:400]), X[400:460], y[400:460]


def test_outputs_are_uqgans_reading_of_the_sigmoids(fitted):
    clf, X, _ = fitted
    with torch.no_grad():
        sigmoids = clf.module_(torch.from_numpy(X)).double().sigmoid().numpy()
    expected, p_in = class_probabilities(sigmoids, clf.class_prior_)
    P = clf.predict_proba(X)
    np.testing.assert_allclose(P, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), P.argmax(axis=1))
    U = clf.predict_uncertainty(X)
    assert U.shape == (len(X), 2) and ((U >= 0) & (U <= 1)).all()
    np.testing.assert_allclose(clf.score_samples(X), 1 - U[:, 0], rtol=1e-12)
    np.testing.assert_allclose(clf.score_samples(X), p_in, rtol=1e-5)


def test_training_learns_and_the_rate_falls_to_min_lr(digits):
    X, y = digits
    clf = OneVsAllClassifier(max_epochs=30, batch_size=64, random_state=0, verbose=0,
                             device="cpu", min_lr=1e-4).fit(X[:1000], y[:1000])
    assert (clf.predict(X[1000:]) == y[1000:]).mean() > 0.8           # chance: 0.1
    losses = [row["train_loss"] for row in clf.history]
    assert losses[-1] < 0.5 * losses[0]
    assert clf.history[0]["event_lr"] == pytest.approx(1e-3)
    assert clf.history[-1]["event_lr"] == pytest.approx(1e-4)


def test_class_prior_and_negative_weights_come_from_the_label_counts(digits):
    X, y = digits
    keep = np.r_[np.flatnonzero(y == 0)[:60], np.flatnonzero(y == 1)[:20],
                 np.flatnonzero(y == 2)[:20]]
    clf = OneVsAllClassifier(max_epochs=1, random_state=0, verbose=0, device="cpu")
    clf.fit(X[keep], y[keep])
    np.testing.assert_allclose(clf.class_prior_, [0.6, 0.2, 0.2])
    assert clf.negative_weights_[0, 1].item() == pytest.approx(20 / 60)
    assert clf.negative_weights_[1, 0].item() == pytest.approx(60 / 20)
    assert list(clf.classes_) == [0, 1, 2]


def test_same_seed_same_classifier_and_clone_and_pickle_keep_it(fitted, digits):
    clf, X, _ = fitted
    again = clone(clf).fit(digits[0][:400], digits[1][:400])
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    params = clone(clf).get_params()
    assert params["random_state"] == 0 and params["lambda_negative"] == 0.5
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    assert OneVsAllClassifier().get_params()["device"] == "auto"


def test_partial_fit_from_scratch_and_warm_start_keep_one_weight_per_output(digits):
    X, y = digits
    clf = OneVsAllClassifier(max_epochs=1, random_state=0, verbose=0, device="cpu")
    clf.partial_fit(X[:200], y[:200])                       # never fitted: counts first
    assert clf.negative_weights_.shape == (10, 10) and len(clf.class_prior_) == 10
    prior = clf.class_prior_.copy()
    clf.set_params(warm_start=True).fit(X[:200][y[:200] < 5], y[:200][y[:200] < 5])
    np.testing.assert_array_equal(clf.class_prior_, prior)  # continuing keeps the first
    assert clf.predict_proba(X[:3]).shape == (3, 10)


def test_get_params_never_computes_with_values_fit_refuses():
    for params in ({"lr": 0}, {"max_epochs": "many"}, {"min_lr": None}):
        assert OneVsAllClassifier(**params).get_params()[next(iter(params))] == \
            next(iter(params.values()))


@pytest.mark.parametrize("params, message", [
    ({"min_lr": 0.01}, "min_lr must be a positive number at most lr"),
    ({"lambda_negative": -1.0}, "lambda_negative must be a non-negative number"),
    ({"lr": float("nan")}, "lr"),
])
def test_bad_settings_are_refused_by_fit(digits, params, message):
    X, y = digits
    with pytest.raises(ValueError, match=message):
        OneVsAllClassifier(max_epochs=1, verbose=0, **params).fit(X[:50], y[:50])


def test_labels_are_required_and_an_unfitted_classifier_says_so(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="needs the labels as y"):
        OneVsAllClassifier().fit(X[:10], None)
    with pytest.raises(Exception, match="not initialized|not fitted"):
        OneVsAllClassifier().predict_proba(X[:2])


def test_gradient_features_and_gradnorm_refuse_to_read_the_sigmoids_as_a_softmax(fitted):
    """Issue 25: softmax features of a one-vs-all network (softmax__max_prob 0.11) came
    without a word, and GradNorm's softmax target too."""
    from sklearn.frozen import FrozenEstimator

    from skgradunc import GradientMetricTransformer
    from skgradunc.detectors import gradnorm_score
    clf, X, _ = fitted
    with pytest.raises(ValueError, match="OneVsAllClassifier's criterion BCEWithLogitsLoss "
                                         "reads each output as its own sigmoid"):
        GradientMetricTransformer(FrozenEstimator(clf), device="cpu").fit(X)
    with pytest.raises(ValueError, match="one-vs-all .* output='logits'"):
        gradnorm_score(clf, X, device="cpu")


@pytest.mark.parametrize("relabel", [
    lambda y: np.array([0, 1, 2, 4])[y],            # a gap: {0, 1, 2, 4}
    lambda y: y + 1,                                 # 1..4, no class 0
    lambda y: np.array(["a", "b", "c", "d"])[y],     # strings
])
def test_classes_are_the_sorted_labels_seen_of_any_type(digits, relabel):
    """Issue 25: labels {0, 1, 2, 4} gave classes_ 0..4 with a probability column (and an
    output) for the never-seen 3. scikit-learn's convention: classes_ = the sorted labels
    seen; the network is the one the positions 0..K-1 train."""
    X, y = digits
    keep = np.flatnonzero(y < 4)[:200]
    X, y = X[keep], y[keep]
    settings = dict(max_epochs=2, random_state=0, verbose=0, device="cpu")
    plain = OneVsAllClassifier(**settings).fit(X, y)
    labels = relabel(y)
    clf = OneVsAllClassifier(**settings).fit(X, labels)
    np.testing.assert_array_equal(clf.classes_, np.unique(labels))
    P = clf.predict_proba(X[:20])
    assert P.shape == (20, 4)
    np.testing.assert_array_equal(P, plain.predict_proba(X[:20]))
    np.testing.assert_array_equal(clf.predict(X[:20]), np.unique(labels)[P.argmax(1)])
    np.testing.assert_allclose(clf.class_prior_, np.bincount(y) / len(y))
    # continuing training takes labels among the classes, refuses others
    clf.set_params(warm_start=True, max_epochs=1).fit(X[:50], labels[:50])
    clf.partial_fit(X[:50], labels[:50])
    with pytest.raises(ValueError, match="not among the classes"):
        clf.partial_fit(X[:2], np.array([labels[0], "z" if labels.dtype.kind == "U" else 9]))


def test_the_classes_parameter_names_every_output(digits):
    X, y = digits
    keep = np.flatnonzero(y < 3)[:120]
    clf = OneVsAllClassifier(classes=[0, 1, 2, 3], max_epochs=1, random_state=0, verbose=0,
                             device="cpu").fit(X[keep], y[keep])
    assert clf.predict_proba(X[:2]).shape == (2, 4) and clf.class_prior_[3] == 0
    with pytest.raises(ValueError, match="module__n_classes=5, but there are 3 classes"):
        OneVsAllClassifier(module__n_classes=5, max_epochs=1, verbose=0,
                           device="cpu").fit(X[keep], y[keep])
