"""UQGANClassifier at toy scale: outputs, seeds, clone and pickle, the generated samples'
role, divergence and bad settings."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skgradunc import TrainingDivergedError, UQGANClassifier
from skgradunc.uqgan import _training as training_module
from skgradunc.uqgan._training import UQGANTraining
from skgradunc.uqgan._losses import class_probabilities

TOY = dict(cae_epochs=2, iterations=4, batch_size=32, random_state=0, verbose=False,
           device="cpu")


@pytest.fixture(scope="module")
def toy(digits):
    X, y = digits
    keep = np.flatnonzero(y < 3)
    return X[keep[:300]], y[keep[:300]], X[keep[300:360]]


@pytest.fixture(scope="module")
def fitted(toy):
    X, y, _ = toy
    return UQGANClassifier(**TOY).fit(X, y)


def test_outputs_are_uqgans_reading_of_its_classifier(fitted, toy):
    _, _, X_new = toy
    with torch.no_grad():
        sigmoids = fitted.classifier_(torch.from_numpy(X_new)).double().sigmoid().numpy()
    P, p_in = class_probabilities(sigmoids, fitted.class_prior_)
    np.testing.assert_allclose(fitted.predict_proba(X_new), P, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fitted.score_samples(X_new), p_in, rtol=1e-5)
    U = fitted.predict_uncertainty(X_new)
    assert U.shape == (60, 2) and ((U >= 0) & (U <= 1)).all()
    assert set(fitted.predict(X_new)) <= {0, 1, 2}
    assert len(fitted.history_) == fitted.n_iter_ == 4
    assert set(fitted.history_[0]) == {"critic", "generator", "classifier"}
    assert not any(p.requires_grad for p in fitted.autoencoder_.parameters())   # frozen


def test_same_seed_same_model_and_clone_and_pickle_keep_it(fitted, toy):
    X, y, X_new = toy
    again = clone(fitted).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X_new), fitted.predict_proba(X_new))
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X_new), fitted.predict_proba(X_new))
    assert clone(fitted).get_params() == fitted.get_params()
    assert UQGANClassifier().get_params()["device"] == "auto"


def test_unseeded_fits_draw_new_networks(toy):
    X, y, X_new = toy
    unseeded = {**TOY, "random_state": None, "iterations": 1, "cae_epochs": 1}
    first = UQGANClassifier(**unseeded).fit(X, y).predict_proba(X_new)
    second = UQGANClassifier(**unseeded).fit(X, y).predict_proba(X_new)
    assert not np.allclose(first, second)


def test_generated_images_are_negatives_of_the_class_they_were_made_for(toy, monkeypatch):
    """The classifier's generated negatives carry the classes the generator was asked
    for, and only those outputs are pushed down (generated_loss reads output y only)."""
    X, y, _ = toy
    asked, negatives = [], []
    original_forward = training_module.LatentGenerator.forward

    def recording_forward(self, y_onehot, z=None):
        asked.append(y_onehot.argmax(1).clone())
        return original_forward(self, y_onehot, z)
    original_loss = training_module.generated_loss

    def recording_loss(logits, labels):
        negatives.append(labels.clone())
        return original_loss(logits, labels)
    monkeypatch.setattr(training_module.LatentGenerator, "forward", recording_forward)
    monkeypatch.setattr(training_module, "generated_loss", recording_loss)
    UQGANClassifier(**{**TOY, "iterations": 2, "classifier_iterations": 1}).fit(X, y)
    # per iteration: critic's sample, generator's sample, classifier's sample
    assert len(asked) == 6 and len(negatives) == 4    # generator step + classifier step
    for i in range(2):
        torch.testing.assert_close(negatives[2 * i], asked[3 * i + 1])     # generator
        torch.testing.assert_close(negatives[2 * i + 1], asked[3 * i + 2])  # classifier


def _state(network):
    return {k: v.clone() for k, v in network.state_dict().items()}


def _changed(before, network):
    return {k for k, v in network.state_dict().items() if not torch.equal(v, before[k])}


def test_each_step_trains_its_own_network_only(toy):
    """Critic steps move the critic only, the generator step the generator only (its
    BatchNorm statistics included), classifier steps the classifier only."""
    X, y, _ = toy
    model = UQGANClassifier(**TOY)
    torch.manual_seed(0)
    training = UQGANTraining(model)
    nets = training.build(3, X.shape[1:], "cpu")
    cae, G, D, C = (nets[k] for k in ("autoencoder", "generator", "critic", "classifier"))
    for p in cae.parameters():
        p.requires_grad_(False)
    x, labels = torch.from_numpy(X[:32]), torch.from_numpy(y[:32])
    y_onehot = torch.nn.functional.one_hot(labels, 3).float()
    codes = cae.encode(x, y_onehot).detach()
    weights = torch.ones(3, 3)
    steps = [
        ("critic", lambda: training.critic_steps(
            D, G, codes, y_onehot, torch.optim.Adam(D.parameters(), 1e-3))),
        ("generator", lambda: training.generator_step(
            G, D, C, cae, codes, labels, y_onehot, torch.optim.Adam(G.parameters(), 1e-3))),
        ("classifier", lambda: training.classifier_steps(
            C, G, cae, x, labels, y_onehot, weights, torch.optim.Adam(C.parameters(), 1e-3))),
    ]
    for trained, step in steps:
        before = {name: _state(net) for name, net in nets.items()}
        step()
        moved = {name for name, net in nets.items() if _changed(before[name], net)}
        assert moved == {trained}, (trained, moved)
        if trained == "generator":   # the gradients D and C received are not left behind
            assert all(p.grad is None for net in (D, C) for p in net.parameters())


def test_sampled_out_of_class_images_are_images_of_the_input_shape(fitted):
    images = fitted.sample_out_of_class([0, 1, 2, 2], random_state=1)
    assert images.shape == (4, 1, 28, 28) and images.dtype == np.float32
    assert ((images >= 0) & (images <= 1)).all()
    np.testing.assert_array_equal(images, fitted.sample_out_of_class([0, 1, 2, 2],
                                                                     random_state=1))


def test_a_diverging_gan_is_reported_never_silent(toy, monkeypatch):
    X, y, _ = toy
    monkeypatch.setattr(training_module, "gradient_penalty",
                        lambda *a, **k: torch.tensor(float("nan")))
    with pytest.raises(TrainingDivergedError, match="critic loss became nan in iteration 1"):
        UQGANClassifier(**TOY).fit(X, y)


@pytest.mark.parametrize("params, message", [
    ({"lambda_real_ood": 1.5}, "lambda_real_ood must be a number in \\[0, 1\\]"),
    ({"gan_min_lr": 1.0}, "gan_min_lr must be a positive number at most gan_lr"),
    ({"iterations": 0}, "iterations"),
    ({"batch_size": 1000}, "fewer than batch_size=1000"),
    ({"lambda_gp": float("nan")}, "lambda_gp"),
    ({"batch_size": 1}, "batch_size must be an integer of at least 2"),
])
def test_bad_settings_are_refused_before_training(toy, params, message):
    X, y, _ = toy
    with pytest.raises(ValueError, match=message):
        UQGANClassifier(**{**TOY, **params}).fit(X, y)


def test_bad_data_is_refused(toy):
    X, y, _ = toy
    with pytest.raises(ValueError, match="single class"):
        UQGANClassifier(**TOY).fit(X, np.zeros_like(y))
    with pytest.raises(ValueError, match="divisible by 4"):
        UQGANClassifier(**TOY).fit(X[:, :, :26, :26], y)
    with pytest.raises(Exception, match="not fitted"):
        UQGANClassifier().predict(X[:2])


@pytest.mark.parametrize("relabel", [
    lambda y: np.array([0, 1, 4])[y],               # a gap: {0, 1, 4}
    lambda y: y + 1,                                 # 1..3, no class 0
    lambda y: np.array(["cat", "dog", "emu"])[y],    # strings
])
def test_classes_are_the_sorted_labels_seen_of_any_type(toy, fitted, relabel):
    """Issue 25: labels {0, 1, 2, 4} gave classes_ 0..4 with a probability column for the
    never-seen 3, labels 1..5 an unseen class 0. scikit-learn's convention: classes_ are
    the sorted labels seen, and the model is the one the positions 0..K-1 train."""
    X, y, X_test = toy
    labels = relabel(y)
    model = UQGANClassifier(**TOY).fit(X, labels)
    np.testing.assert_array_equal(model.classes_, np.unique(labels))
    P = model.predict_proba(X_test)
    assert P.shape == (len(X_test), 3)
    np.testing.assert_array_equal(P, fitted.predict_proba(X_test))   # same networks
    np.testing.assert_array_equal(model.predict(X_test), np.unique(labels)[P.argmax(1)])
    np.testing.assert_array_equal(model.sample_out_of_class(np.unique(labels), random_state=1),
                                  fitted.sample_out_of_class([0, 1, 2], random_state=1))
    with pytest.raises(ValueError, match="not among the classes"):
        model.sample_out_of_class([labels[0], "zebra" if labels.dtype.kind == "U" else 99])
