"""The paper's pipeline end to end on the digits default, as users write it."""

import numpy as np
import pytest
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline

import skgradunc as sgu


@pytest.fixture
def tripwired(fitted_net, monkeypatch):
    """The trained CNN, with every way of retraining it turned into an error."""
    def refuse(*args, **kwargs):
        raise AssertionError("the CNN was asked to train again")
    for method in ("fit", "partial_fit", "initialize"):
        monkeypatch.setattr(fitted_net, method, refuse)
    return fitted_net


def weights(net):
    return {k: v.clone() for k, v in net.module_.state_dict().items()}


def test_design_idiom_runs_as_written(tripwired, digits_split):
    net = tripwired                     # DESIGN.md trains it with CNNClassifier(...).fit(...)
    X_val, y_val = digits_split[2][:200], digits_split[3][:200]
    X_test = digits_split[2][200:]
    before, epochs = weights(net), len(net.history)

    grad = sgu.GradientMetricTransformer(FrozenEstimator(net))        # target="predicted"
    F = grad.set_output(transform="pandas").fit_transform(X_val)      # named columns
    y_meta = sgu.correctness_target(net, X_val, y_val)                # 1 correct, 0 wrong
    pipe = make_pipeline(grad, sgu.MetaClassifier("lasso"))
    scores = cross_val_score(pipe, X_val, y_meta, scoring=sgu.metrics.scorer("aupr_out"))
    search = GridSearchCV(pipe, {"metaclassifier__C": [0.01, 0.1, 1, 10]},
                          scoring=sgu.metrics.scorer("auroc")).fit(X_val, y_meta)
    confidence = search.predict_proba(X_test)[:, 1]                   # P(prediction correct)
    X_noise = sgu.datasets.make_noise(200, kind="uniform", shape=X_val.shape[1:])
    pipe.fit(np.concatenate([X_val, X_noise]), np.concatenate([y_meta, np.zeros(200)]))

    assert list(F.columns[:2]) == ["conv1__l1", "conv1__l2"] and 0 < y_meta.mean() < 1
    assert scores.shape == (5,) and np.all((scores >= 0) & (scores <= 1))
    assert search.best_params_["metaclassifier__C"] in (0.1, 1, 10)
    assert confidence.shape == (len(X_test),) and np.all((confidence >= 0) & (confidence <= 1))
    assert len(net.history) == epochs
    for k, v in weights(net).items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("wrap", [FrozenEstimator, lambda net: net], ids=["frozen", "plain"])
def test_cross_validation_and_search_never_refit_the_cnn(tripwired, digits_split, wrap):
    X, y = digits_split[2], digits_split[3]
    y_meta = sgu.correctness_target(tripwired, X, y)
    before = weights(tripwired)
    pipe = make_pipeline(sgu.GradientMetricTransformer(wrap(tripwired)),
                         sgu.MetaClassifier("lasso"))
    auroc = cross_val_score(pipe, X, y_meta, cv=3, scoring=sgu.metrics.scorer("auroc"))
    aupr_out = cross_val_score(pipe, X, y_meta, cv=3, scoring=sgu.metrics.scorer("aupr_out"))
    GridSearchCV(pipe, {"metaclassifier__C": [0.1, 1.0]}, cv=3,
                 scoring=sgu.metrics.scorer("auroc")).fit(X, y_meta)
    # gradients do tell right from wrong (a fold holds ~10 wrong predictions: a fold's
    # AUROC moves by 0.1 with one of them, 0.69 seen once on a GPU-trained network)
    assert auroc.mean() > 0.75 and np.all(auroc > 0.5), auroc
    assert np.all(aupr_out > (1 - y_meta.mean())), aupr_out   # better than chance
    for k, v in weights(tripwired).items():
        assert torch.equal(v, before[k]), k


def test_known_unknowns_end_to_end(fitted_net, digits_split):
    X, y = digits_split[2], digits_split[3]
    X_all, y_all = sgu.append_out_of_distribution(
        X, y, sgu.datasets.make_noise(100, random_state=0))
    y_meta = sgu.correctness_target(fitted_net, X_all, y_all)
    pipe = make_pipeline(sgu.GradientMetricTransformer(FrozenEstimator(fitted_net)),
                         sgu.MetaClassifier("nn", random_state=0)).fit(X_all, y_meta)
    fresh_noise = sgu.datasets.make_noise(100, random_state=1)
    confidence = pipe.predict_proba(np.concatenate([X, fresh_noise]))[:, 1]
    is_digit = np.r_[np.ones(len(X)), np.zeros(100)]
    assert sgu.metrics.auroc(is_digit, confidence) > 0.95


def test_threshold_baseline_in_a_pipeline(fitted_net, digits_split):
    X, y = digits_split[2], digits_split[3]
    y_meta = sgu.correctness_target(fitted_net, X, y)
    pipe = make_pipeline(sgu.GradientMetricTransformer(FrozenEstimator(fitted_net)),
                         sgu.SingleMetricClassifier("softmax__max_prob")
                         ).set_output(transform="pandas").fit(X, y_meta)
    entropy_free = sgu.metrics.auroc(y_meta, fitted_net.predict_proba(X).max(1))
    # the same ranking up to float32 rounding of two forwards: at most a swapped near-tie
    pairs = y_meta.sum() * (len(y_meta) - y_meta.sum())
    scored = sgu.metrics.scorer("auroc")(pipe, X, y_meta)
    assert scored == pytest.approx(entropy_free, abs=1.5 / pairs)
    assert pipe[-1].direction_ == 1
