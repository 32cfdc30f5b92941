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
    with pytest.raises(ValueError, match="no 2-D weight.*parameter="):
        gradnorm_score(net, _X(), device="cpu")


def test_gradnorm_takes_the_last_layer_when_it_is_frozen():
    """Issue 25: a frozen last layer made GradNorm the first layer's L1 norm, silently.
    GradNorm is defined on the last layer: its gradient is taken, frozen or not, and the
    network's requires_grad flags are left as they were."""
    net, X = _net(), _X()
    net[5].weight.requires_grad_(False)
    assert last_layer_weight(net) == "5.weight"

    def kl(z):
        u = torch.full_like(z, 1 / len(z))
        return torch.sum(u * (torch.log(u) - torch.log_softmax(z, -1)))

    expected = np.abs(_per_sample(net, X, kl)["5.weight"]).sum(axis=(1, 2))
    np.testing.assert_allclose(gradnorm_score(net, X, device="cpu"), expected, rtol=1e-4)
    assert not net[5].weight.requires_grad and net[5].bias.requires_grad


def test_a_frozen_parameter_named_in_groups_is_taken_but_not_in_the_network_group():
    from skgradunc import GradientMetricTransformer
    net, X = _net(), _X()
    net[3].requires_grad_(False)
    grad = GradientMetricTransformer(net, groups={"frozen": ["3"]}, statistics=["l2"],
                                     softmax_features=False, device="cpu").fit(X)

    def nll(z):
        return -torch.log_softmax(z, -1)[z.argmax()]
    grads = _per_sample(net, X, nll)
    F = grad.transform(X)
    frozen = np.sqrt((grads["3.weight"] ** 2).sum(axis=(1, 2)) + (grads["3.bias"] ** 2).sum(1))
    network = np.sqrt(sum((grads[n].reshape(len(X), -1) ** 2).sum(1)
                          for n in grads if not n.startswith("3.")))
    np.testing.assert_allclose(F, np.c_[frozen, network], rtol=1e-4)


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


def test_string_labels_need_the_positive_class_named():
    """Issue 25: fit(X, ["in", ..., "out", ...]) sorted the classes, so predict_proba[:, 1]
    was P("out") while the documented convention is column 1 = in distribution."""
    net, X = _net(), _X(40)
    y = np.array(["in"] * 20 + ["out"] * 20)
    with pytest.raises(ValueError, match=r"labels \['in', 'out'\] are not 0 / 1.*pos_label"):
        lee_alregib_detector(net, random_state=0, device="cpu").fit(X, y)
    named = lee_alregib_detector(net, random_state=0, device="cpu", pos_label="in").fit(X, y)
    numeric = lee_alregib_detector(net, random_state=0, device="cpu").fit(
        X, (y == "in").astype(int))
    assert named[-1].classes_.tolist() == ["out", "in"]
    np.testing.assert_array_equal(named.predict_proba(X), numeric.predict_proba(X))
    np.testing.assert_array_equal(named.predict(X),
                                  np.where(numeric.predict(X) == 1, "in", "out"))
    with pytest.raises(ValueError, match="pos_label='yes' is not one of"):
        lee_alregib_detector(net, device="cpu", pos_label="yes").fit(X, y)
