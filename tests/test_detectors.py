"""The other gradient detectors as their authors define them (skgradunc/detectors.py):
GradNorm's score and Lee & AlRegib's pipeline, against per-sample autograd written out."""

import numpy as np
import pytest
import torch

from skgradunc import correctness_target
from skgradunc.detectors import gradnorm_score, last_layer_weight, lee_alregib_detector

nn = torch.nn


def _net():
    torch.manual_seed(5)
    return nn.Sequential(nn.Conv1d(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(12, 8),
                         nn.ReLU(), nn.Linear(8, 4))


def _X(n=7):
    return np.random.RandomState(0).normal(size=(n, 2, 6)).astype(np.float32)


def _per_sample(net, X, loss):
    """{parameter: (n, ...) float64 gradients} by a per-sample autograd loop."""
    net64 = _net().double()
    net64.load_state_dict(net.state_dict())
    rows = []
    for x in torch.from_numpy(X).double():
        net64.zero_grad()
        loss(net64(x[None])[0]).backward()
        rows.append({n: p.grad.clone() for n, p in net64.named_parameters()})
    return {n: torch.stack([r[n] for r in rows]).numpy() for n in rows[0]}


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_gradnorm_is_the_l1_norm_of_the_last_weights_kl_gradient(temperature):
    """Huang et al. 2021, Eq. 3: S(x) = ||d KL(u || softmax(f(x)/T)) / dW||_1."""
    net, X = _net(), _X()

    def kl(z):
        u = torch.full_like(z, 1 / len(z))
        return torch.sum(u * (torch.log(u) - torch.log_softmax(z / temperature, -1)))

    grads = _per_sample(net, X, kl)
    scores = gradnorm_score(net, X, temperature=temperature, device="cpu")
    np.testing.assert_allclose(scores, np.abs(grads["5.weight"]).sum(axis=(1, 2)), rtol=1e-4)
    assert last_layer_weight(net) == "5.weight"
    other = gradnorm_score(net, X, temperature=temperature, parameter="3.weight", device="cpu")
    np.testing.assert_allclose(other, np.abs(grads["3.weight"]).sum(axis=(1, 2)), rtol=1e-4)


def test_gradnorm_needs_a_linear_weight():
    net = nn.Sequential(nn.Conv1d(2, 4, 6), nn.Flatten())
    with pytest.raises(ValueError, match="no trainable 2-D weight.*parameter="):
        gradnorm_score(net, _X(), device="cpu")


def test_lee_alregib_features_are_squared_l2_norms_per_parameter_of_the_softmax_bce():
    """Their r(x) = [||grad_theta_p J||^2 for each parameter tensor], J = BCE(softmax, 1)."""
    net, X = _net(), _X()
    detector = lee_alregib_detector(net, random_state=0, device="cpu")
    features = detector[:-1].fit_transform(X)

    def bce(z):
        return torch.nn.functional.binary_cross_entropy(torch.softmax(z, -1),
                                                        torch.ones_like(z), reduction="sum")

    grads = _per_sample(net, X, bce)
    names = list(detector[:-1].get_feature_names_out())
    assert names == [f"{name}__l2" for name in grads]
    expected = np.stack([(g.reshape(len(X), -1) ** 2).sum(1) for g in grads.values()], 1)
    np.testing.assert_allclose(features, expected, rtol=2e-4)


def test_lee_alregib_detector_separates_in_distribution_from_noise():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    rng = np.random.RandomState(2)
    centres = 3 * np.eye(3, 4)
    labels = rng.randint(0, 3, 300)
    X = (centres[labels] + 0.5 * rng.normal(size=(300, 4))).astype(np.float32)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(labels)).backward()
        optimiser.step()
    noise = rng.uniform(-6, 6, size=(300, 4)).astype(np.float32)
    train = np.r_[X[:150], noise[:150]]
    y = np.r_[np.ones(150), np.zeros(150)]
    detector = lee_alregib_detector(net, random_state=0, device="cpu").fit(train, y)
    from skgradunc.metrics import auroc
    confidence = detector.predict_proba(np.r_[X[150:], noise[150:]])[:, 1]
    assert auroc(np.r_[np.ones(150), np.zeros(150)], confidence) > 0.9
    assert correctness_target(net, X, labels).mean() > 0.9   # a trained classifier


def test_an_unfitted_network_is_refused_not_trained_on_the_detectors_labels():
    from skorch import NeuralNetClassifier
    unfitted = NeuralNetClassifier(_net, max_epochs=1)
    with pytest.raises(TypeError, match="cannot find a torch module.*fitted skorch net"):
        lee_alregib_detector(unfitted)
    with pytest.raises(TypeError, match="cannot find a torch module.*fitted skorch net"):
        gradnorm_score(unfitted, _X(), parameter="5.weight")
