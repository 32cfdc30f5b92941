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


# -- detectors fitted on in-distribution data alone (issue 27) -----------------------------
from scipy.spatial.distance import mahalanobis  # noqa: E402
from sklearn.covariance import EllipticEnvelope, LedoitWolf  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402
from sklearn.neighbors import LocalOutlierFactor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from skgradunc import GradientMetricTransformer, metrics  # noqa: E402
from skgradunc.detectors import KNNDetector, MahalanobisDetector  # noqa: E402


def _blobs(n=300, seed=0):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 3, n)
    centres = np.array([[0, 0, 0, 0], [4, 0, 2, 0], [0, 4, 0, 2]], dtype=float)
    scale = np.array([1.0, 0.5, 2.0, 1.0])
    return centres[y] + scale * rng.normal(size=(n, 4)), y


@pytest.mark.parametrize("shrinkage", ["auto", 0.3, None])
def test_mahalanobis_is_the_distance_to_the_nearest_class_mean_under_the_shared_covariance(
        shrinkage):
    """Lee et al. (2018), against scipy's distance: class means, the pooled within-class
    covariance (shrunk as LedoitWolf / ShrunkCovariance would)."""
    X, y = _blobs()
    detector = MahalanobisDetector(shrinkage=shrinkage).fit(X, y)
    means = np.stack([X[y == c].mean(0) for c in range(3)])
    centred = X - means[y]
    if shrinkage == "auto":
        covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    else:
        empirical = centred.T @ centred / len(X)
        mu = np.trace(empirical) / 4
        s = shrinkage or 0.0
        covariance = (1 - s) * empirical + s * mu * np.eye(4)
    inverse = np.linalg.inv(covariance)
    X_new = _blobs(50, seed=1)[0] * 1.5
    expected = [-min(mahalanobis(x, m, inverse) ** 2 for m in means) for x in X_new]
    np.testing.assert_allclose(detector.score_samples(X_new), expected, rtol=1e-9)
    assert detector.classes_.tolist() == [0, 1, 2]


def test_knn_is_the_distance_to_the_kth_nearest_normalised_training_sample():
    """Sun et al. (2022), against a brute-force distance matrix."""
    X, _ = _blobs()
    X_new = _blobs(40, seed=2)[0] + 1.0
    detector = KNNDetector(n_neighbors=7).fit(X)

    def unit(A):
        return A / np.linalg.norm(A, axis=1, keepdims=True)
    distances = np.linalg.norm(unit(X_new)[:, None] - unit(X)[None], axis=2)
    np.testing.assert_allclose(detector.score_samples(X_new),
                               -np.sort(distances, axis=1)[:, 6], rtol=1e-9)
    # the training samples' own threshold leaves each out of its neighbours
    own = np.linalg.norm(unit(X)[:, None] - unit(X)[None], axis=2)
    leave_one_out = -np.sort(own, axis=1)[:, 7]
    assert detector.offset_ == pytest.approx(np.quantile(leave_one_out, 0.05, method="lower"))
    raw = KNNDetector(n_neighbors=3, normalize=False).fit(X)
    np.testing.assert_allclose(
        raw.score_samples(X_new),
        -np.sort(np.linalg.norm(X_new[:, None] - X[None], axis=2), axis=1)[:, 2], rtol=1e-9)


@pytest.mark.parametrize("detector", [MahalanobisDetector(), KNNDetector(n_neighbors=10)])
def test_the_threshold_keeps_the_chosen_rate_of_fresh_in_distribution_data(detector):
    """predict keeps 95 % of in-distribution inputs it has not seen, within sampling error
    (4,000 fresh samples: a binomial standard error of 0.34 %; 4 of them allowed)."""
    X, y = _blobs(2000, seed=3)
    detector.fit(X, y)
    fresh, _ = _blobs(4000, seed=4)
    kept = (detector.predict(fresh) == 1).mean()
    assert abs(kept - 0.95) < 4 * np.sqrt(0.95 * 0.05 / 4000) + 0.01   # + the fit's own error
    assert set(np.unique(detector.predict(fresh - 30))) == {-1}   # far, and pointing away
    np.testing.assert_allclose(detector.decision_function(fresh),
                               detector.score_samples(fresh) - detector.offset_)


def test_bad_settings_and_inputs_are_refused():
    X, y = _blobs(20)
    with pytest.raises(ValueError, match="tpr must be a fraction"):
        KNNDetector(tpr=1.0).fit(X)
    with pytest.raises(ValueError, match="n_neighbors=20 needs more training samples"):
        KNNDetector(n_neighbors=20).fit(X)
    with pytest.raises(ValueError, match="shrinkage must be"):
        MahalanobisDetector(shrinkage=2).fit(X, y)
    with pytest.raises(ValueError, match="one class label per sample"):
        MahalanobisDetector().fit(X, y[:5])
    with pytest.raises(ValueError, match="NaN"):
        MahalanobisDetector().fit(np.r_[X, [[np.nan] * 4]])
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        KNNDetector().score_samples(X)


@parametrize_with_checks([MahalanobisDetector(), KNNDetector(n_neighbors=5)])
def test_in_distribution_detectors_pass_scikit_learns_checks(estimator, check):
    check(estimator)


def _trained_net_and_data():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    rng = np.random.RandomState(2)
    centres = 3 * np.eye(3, 4)
    labels = rng.randint(0, 3, 400)
    X = (centres[labels] + 0.5 * rng.normal(size=(400, 4))).astype(np.float32)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(labels)).backward()
        optimiser.step()
    noise = rng.uniform(-6, 6, size=(200, 4)).astype(np.float32)
    return net, X, labels, noise


@pytest.mark.parametrize("detector", [
    MahalanobisDetector(), KNNDetector(n_neighbors=10), EllipticEnvelope(random_state=0),
    LocalOutlierFactor(novelty=True), IsolationForest(random_state=0)])
def test_novelty_detectors_compose_after_gradient_metrics_and_score_with_the_scorers(detector):
    """Fitted on in-distribution images alone; the package's scorers read score_samples or
    decision_function (y: 1 in distribution)."""
    net, X, labels, noise = _trained_net_and_data()
    pipe = make_pipeline(GradientMetricTransformer(net, device="cpu"), StandardScaler(),
                         detector)
    pipe.fit(X[:300], labels[:300])   # the labels reach only what takes them
    X_test = np.r_[X[300:], noise[:100]]
    y_in = np.r_[np.ones(100), np.zeros(100)]
    auroc = metrics.scorer("auroc")(pipe, X_test, y_in)
    assert 0.5 < auroc <= 1.0
    assert set(np.unique(pipe.predict(X_test))) <= {-1, 1}
