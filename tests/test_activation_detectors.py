"""Activation gradients (skgradunc._engine._activations) and the detectors on them
(skgradunc.detectors.NACDetector, GAIADetector), against a per-sample float64 autograd
loop of the published formulas and, for NAC-UE, the authors' code on the same tensors."""

import copy

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skgradunc._engine import UnsupportedNetworkError
from skgradunc._engine._activations import layer_gradients, map_chunks
from skgradunc._data import as_samples
from skgradunc.detectors import GAIADetector, NACDetector, nac_bin_edges

import nac_reference as ref
from reference import reference_loss, reference_statistics
from tolerances import assert_features_close

from skgradunc import ActivationGradientTransformer
from skgradunc.statistics import STATISTICS


class SmallCNN(torch.nn.Module):
    """Convolutions, a normalisation layer, in-place ReLUs, a linear head."""

    def __init__(self, classes=3):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.relu1 = torch.nn.ReLU(inplace=True)
        self.conv2 = torch.nn.Conv2d(4, 6, 3)
        self.relu2 = torch.nn.ReLU(inplace=True)
        self.flat = torch.nn.Flatten()
        self.fc1 = torch.nn.Linear(6 * 4 * 4, 10)
        self.relu3 = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(10, classes)

    def forward(self, x):
        h = self.relu2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.fc2(self.relu3(self.fc1(self.flat(h))))


def _network(seed=0):
    torch.manual_seed(seed)
    net = SmallCNN()
    with torch.no_grad():   # non-trivial running statistics for eval mode
        net.bn1.running_mean.uniform_(-0.2, 0.2)
        net.bn1.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _images(n, seed=1):
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)).numpy()


def _per_sample_float64(net, x, layers, loss_of):
    """{layer: [(activation, gradient) per sample]}: each sample alone, float64, the
    layers' outputs kept by retain_grad (the ReLUs made out-of-place, so that the kept
    tensor is the layer's output as it returned it)."""
    net64 = copy.deepcopy(net).double().eval()
    for m in net64.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    found = {name: [] for name in layers}
    for i in range(len(x)):
        kept = {}
        handles = [net64.get_submodule(name).register_forward_hook(
            lambda m, a, o, name=name: (o.retain_grad(), kept.__setitem__(name, o))[-1])
            for name in layers]
        out = net64(torch.as_tensor(x[i:i + 1], dtype=torch.float64))
        loss_of(out, kept).backward()
        for h in handles:
            h.remove()
        for name in layers:
            found[name].append((kept[name].detach()[0], kept[name].grad[0]))
    return found


def test_activation_gradients_are_each_samples_own_float64_gradient():
    net, x = _network(), _images(5)
    layers = ["bn1", "conv2", "fc1"]

    def nll(logits, taps):
        return -torch.log_softmax(logits, 1).gather(1, logits.argmax(1, keepdim=True))[:, 0]

    with torch.no_grad():
        weights = {k: v.detach() for k, v in {**dict(net.named_parameters()),
                                              **dict(net.named_buffers())}.items()}
    _, taps = layer_gradients(net, weights, torch.from_numpy(x), layers, [nll],
                              output_kind="logits")
    expected = _per_sample_float64(net, x, layers,
                                   lambda out, kept: -torch.log_softmax(out, 1).max())
    for name in layers:
        for i, (activation, gradient) in enumerate(expected[name]):
            np.testing.assert_allclose(taps[name].activation[i].numpy(), activation.numpy(),
                                       rtol=1e-4, atol=1e-5 * activation.abs().max().item())
            np.testing.assert_allclose(taps[name].gradients[0][i].numpy(), gradient.numpy(),
                                       rtol=1e-4, atol=1e-5 * gradient.abs().max().item())
    # the pre-ReLU output of bn1 keeps its negative values although ReLU runs in place
    assert (taps["bn1"].activation < 0).any()


class BatchMixer(torch.nn.Module):
    def forward(self, x):
        return x - x.mean(dim=0, keepdim=True)


def test_a_network_whose_samples_interact_is_refused():
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), BatchMixer(), torch.nn.ReLU(),
                              torch.nn.Linear(5, 3))
    X = np.random.RandomState(0).randn(20, 4).astype(np.float32)
    with pytest.raises(UnsupportedNetworkError, match="samples interact"):
        NACDetector(net, layers=["2"], min_count=2, device="cpu").fit(X)


def _reference_nac_states(net, x, layers, alpha):
    """The authors' states sigmoid(alpha * pool(o) * pool(kl_grad)) per layer, float32."""
    kept = {}
    handles = [net.get_submodule(name).register_forward_hook(
        lambda m, a, o, name=name: kept.__setitem__(name, o)) for name in layers]
    p = net(torch.from_numpy(x).requires_grad_())
    states = {}
    for j, name in enumerate(layers):
        grad = ref.kl_grad(kept[name], p, retain_graph=j < len(layers) - 1)
        o, g = kept[name].detach(), grad
        if o.dim() > 2:
            o, g = ref.avg_pooling(o), ref.avg_pooling(g)
        states[name] = ref.sigmoid(o * g, sig_alpha=alpha)
    for h in handles:
        h.remove()
    return states


def test_nac_states_are_the_authors_states():
    net, x = _network(), _images(40)
    layers = ["relu2", "relu3"]
    nac = NACDetector(net, layers=layers, alpha=10.0, min_count=3, device="cpu").fit(x)
    products = map_chunks(net, as_samples(x), nac.layers_, nac._losses(), nac._reduce,
                          device="cpu", batch_size=16, output_kind="logits")
    states = np.concatenate(nac._states(products), axis=1)
    reference = _reference_nac_states(_network(), x, layers, 10.0)
    joined = torch.cat([reference[name] for name in layers], dim=1).double().numpy()
    np.testing.assert_allclose(states, joined, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("n_bins", [9, 49])
def test_nac_coverage_and_scores_are_the_authors_on_the_same_states(n_bins):
    rng = np.random.RandomState(0)
    train = rng.beta(0.3, 0.3, size=(300, 7))        # states crowd near 0 and 1
    test = np.concatenate([rng.beta(0.3, 0.3, size=(50, 7)), rng.rand(10, 7)])
    test[0, 0], test[1, 1] = 1.1, 1.0                 # past the 1.01 edge; in the last bin
    nac = NACDetector(None, layers=["a"], n_bins=n_bins, min_count=5)
    nac.layers_ = ["a"]
    nac._fit_states([train])
    estimator = ref.Estimator(7, M=n_bins + 1, O=5)
    estimator.update(torch.from_numpy(train))
    estimator.get_score()
    # the same counts (the reference divides in float32)
    np.testing.assert_array_equal(np.round(nac.coverage_[0] * 5),
                                  np.round(estimator.n_coverage.numpy() * 5))
    np.testing.assert_allclose(nac.coverage_[0], estimator.n_coverage.numpy(), rtol=1e-7)
    np.testing.assert_array_equal(nac.bin_edges_[0], ref.logspace(1e3, n_bins + 1).numpy())
    np.testing.assert_allclose(nac._score_states([test]),
                               estimator.ood_test(torch.from_numpy(test)).numpy(), rtol=1e-7)


def test_nac_auto_alpha_is_one_over_the_training_products_spread():
    net, x = _network(), _images(60)
    nac = NACDetector(net, layers=["relu2", "relu3"], alpha={"relu2": "auto", "relu3": 5.0},
                      min_count=3, device="cpu").fit(x)
    products = map_chunks(net, as_samples(x), nac.layers_, nac._losses(), nac._reduce,
                          device="cpu", batch_size=16, output_kind="logits")
    assert nac.alpha_[0] == pytest.approx(1 / products[:, :6].std(), rel=1e-12)
    assert nac.alpha_[1] == 5.0


def test_nac_bin_edges_are_the_authors_logspace():
    for m in (4, 10, 50, 500):
        np.testing.assert_array_equal(nac_bin_edges(m), ref.logspace(1e3, m).numpy())


def _gaia_float64(net, x, layers, variant):
    """GAIA's abnormality per sample, each alone in float64, from the paper's formulas."""
    values = []
    net64 = copy.deepcopy(net).double().eval()
    for m in net64.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    for i in range(len(x)):
        kept = {}
        handles = [net64.get_submodule(name).register_forward_hook(
            lambda m, a, o, name=name: (o.retain_grad(), kept.__setitem__(name, o))[-1])
            for name in layers]
        xi = torch.as_tensor(x[i:i + 1], dtype=torch.float64)
        out = net64(xi)

        def mean_hw(t):
            return t.flatten(2).mean(2) if t.dim() > 2 else t
        if variant == "Z":
            out.max().backward()
            fractions = torch.cat([mean_hw((kept[n].grad != 0).double()) for n in layers], 1)
            values.append((fractions ** 2).mean().item())
        else:
            head = kept[layers[-1]]
            g1 = torch.autograd.grad(torch.log_softmax(out, 1).sum(), head,
                                     retain_graph=True)[0]
            c = mean_hw(g1).abs().mean().sqrt()
            inner = torch.autograd.grad(head.sum(), [kept[n] for n in layers[:-1]])
            v = torch.cat([mean_hw(g) for g in inner], 1).abs()
            values.append(((v / c) ** 2).mean().item())
        for h in handles:
            h.remove()
    return -np.array(values)


@pytest.mark.parametrize("variant,layers", [("A", ["bn1", "conv2", "relu2"]),
                                            ("A", ["bn1", "fc1"]),
                                            ("Z", ["bn1", "conv2"])])
def test_gaia_is_the_published_formula(variant, layers):
    net, x = _network(), _images(12)
    gaia = GAIADetector(net, layers=layers, variant=variant, batch_size=5,
                        device="cpu").fit(x)
    np.testing.assert_allclose(gaia.score_samples(x), _gaia_float64(net, x, layers, variant),
                               rtol=1e-4)


@pytest.mark.parametrize("make", [lambda net: NACDetector(net, layers=["relu3"], min_count=3,
                                                          device="cpu"),
                                  lambda net: GAIADetector(net, layers=["bn1", "relu2"],
                                                           device="cpu")])
@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_the_detectors_give_the_same_scores_inside_no_grad_and_inference_mode(make, context):
    net, x = _network(), _images(30)
    detector = make(net).fit(x)
    outside = detector.score_samples(x)
    with context():
        inside = make(net).fit(x).score_samples(x)
    np.testing.assert_array_equal(inside, outside)
    assert len(np.unique(outside)) > 1


def test_the_network_is_left_as_it_was():
    net, x = _network(), _images(10)
    net.train()
    before = copy.deepcopy(net.state_dict())
    GAIADetector(net, layers=["bn1", "relu2"], device="cpu").fit(x).score_samples(x)
    NACDetector(net, layers=["relu3"], min_count=2, device="cpu").fit(x)
    assert net.training and net.bn1.training
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert all(p.grad is None for p in net.parameters())


def test_a_dataset_gives_the_scores_of_the_array():
    net, x = _network(), _images(25)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.zeros(25))
    a = NACDetector(net, layers=["relu3"], min_count=2, device="cpu", batch_size=7).fit(x)
    b = NACDetector(net, layers=["relu3"], min_count=2, device="cpu", batch_size=7).fit(dataset)
    np.testing.assert_array_equal(a.score_samples(x), b.score_samples(dataset))


def test_the_threshold_keeps_the_chosen_rate_of_fresh_in_distribution_inputs():
    net = _network()
    gaia = GAIADetector(net, layers=["bn1", "relu2"], tpr=0.9, device="cpu").fit(_images(2000))
    kept = (gaia.predict(_images(2000, seed=7)) == 1).mean()
    assert abs(kept - 0.9) < 3 * np.sqrt(0.9 * 0.1 / 2000) + 0.01   # sampling error


@pytest.mark.parametrize("make,match", [
    (lambda net: NACDetector(net, layers=["nope"]), "no layer named"),
    (lambda net: NACDetector(net, layers=["relu3"], n_bins=50), "odd integer"),
    (lambda net: NACDetector(net, layers=["relu3"], alpha=-1), "alpha"),
    (lambda net: NACDetector(net, layers=["relu3", "fc1"], alpha={"relu3": 1}), "no value"),
    (lambda net: GAIADetector(net, layers=["relu2"]), "GAIA-A needs"),
    (lambda net: GAIADetector(net, layers=["bn1", "relu2"], variant="B"), "variant"),
    (lambda net: GAIADetector(net, layers=["bn1", "bn1"]), "twice"),
    (lambda net: NACDetector(net, layers=["relu3"], tpr=1.5), "tpr")])
def test_bad_parameters_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make(_network()).fit(_images(4))


def test_a_layer_that_does_not_run_is_named():
    net = _network()
    net.unused = torch.nn.Linear(2, 2)
    with pytest.raises(UnsupportedNetworkError, match="did not run"):
        NACDetector(net, layers=["unused"], device="cpu").fit(_images(4))


def test_unfitted_detectors_refuse_to_score_and_clone_keeps_the_network():
    net = _network()
    nac = NACDetector(net, layers=["relu3"], device="cpu")
    with pytest.raises(Exception, match="not fitted"):
        nac.score_samples(_images(3))
    assert clone(nac).estimator is net


@pytest.mark.parametrize("target", ["predicted", "uniform", "all_ones"])
def test_activation_gradient_features_are_the_statistics_of_each_samples_gradient(target):
    net, x = _network(), _images(9)
    layers = ["bn1", "relu2", "fc1"]
    features = ActivationGradientTransformer(net, layers=layers, target=target,
                                             batch_size=4, device="cpu").fit_transform(x)
    expected = _per_sample_float64(net, x, layers, lambda out, kept: reference_loss(out, target))
    names = [f"{layer}__{s}" for layer in layers for s in STATISTICS]
    net64 = copy.deepcopy(net).double()
    rows = []
    for i in range(len(x)):
        row = []
        for layer in layers:
            stats = reference_statistics(expected[layer][i][1].flatten().numpy())
            row += [stats[s] for s in STATISTICS]
        with torch.no_grad():
            p = torch.softmax(net64(torch.as_tensor(x[i:i + 1], dtype=torch.float64)), 1)[0]
        row += [-(p * p.log()).sum().item() / np.log(3), p.max().item()]
        rows.append(row)
    assert_features_close(features, np.array(rows), names + ["softmax__entropy",
                                                             "softmax__max_prob"])
