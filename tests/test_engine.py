"""The engine (skgradunc/_engine): fit makes the plan, transform applies it without
planning again; a chunk of one sample and norm-only features take their fast paths,
exact against the float64 reference."""

import numpy as np
import pytest
import torch

from skgradunc import GradientMetricTransformer, PaperCNN
from skgradunc._engine import Plan, compute_features, lay_out, make_plan
from skgradunc.statistics import STATISTICS

from reference import assert_matches_reference, reference_features
from test_gradient_reference import randomized
from tolerances import assert_features_close

nn = torch.nn


def test_transform_applies_the_plan_fit_made_without_planning_again(monkeypatch):
    """Issue 26: transform rebuilt, re-planned and re-compared the engine on every call."""
    from skgradunc import transformer as transformer_module
    from skgradunc._engine import _probe
    net = randomized(PaperCNN(image_size=12, n_classes=3), seed=1)
    X = np.random.default_rng(0).random((5, 1, 12, 12), dtype=np.float32)
    grad = GradientMetricTransformer(net, device="cpu").fit(X)
    assert isinstance(grad.plan_, Plan) and grad.strategy_ == grad.plan_.strategy
    assert grad.layer_rules_ == dict(grad.plan_.layers)
    expected = grad.transform(X)
    calls = []
    for module, name in ((transformer_module, "make_plan"), (_probe, "lay_out"),
                         (_probe, "make_plan")):
        monkeypatch.setattr(module, name, lambda *a, name=name, **k: calls.append(name))
    np.testing.assert_array_equal(grad.transform(X), expected)
    assert calls == []


def test_a_plan_is_a_frozen_record_of_names_that_pickles():
    import pickle
    net = PaperCNN(image_size=12, n_classes=3)
    plan = make_plan(Plan.for_network(net), net, torch.rand(2, 1, 12, 12), "cpu")
    assert plan.strategy == "per-layer" and pickle.loads(pickle.dumps(plan)) == plan
    assert dict(plan.layers) == {"conv1": "ConvRule", "conv2": "ConvRule", "conv3": "ConvRule",
                                 "dense": "LinearRule"}
    with pytest.raises(Exception):
        plan.strategy = "vmap"


@pytest.mark.parametrize("statistics", [STATISTICS, ["l2"], ["min", "kurtosis"]])
def test_single_samples_match_the_reference_and_the_batch(statistics):
    """A chunk of one sample takes plain autograd with its summaries joined in one pass."""
    torch.manual_seed(3)
    net = randomized(PaperCNN(image_size=12, n_classes=4), seed=3)
    X = np.random.default_rng(1).random((4, 1, 12, 12), dtype=np.float32)
    grad = GradientMetricTransformer(net, statistics=statistics, device="cpu").fit(X)
    names = list(grad.get_feature_names_out())
    singles = np.concatenate([grad.transform(X[i:i + 1]) for i in range(len(X))])
    assert_features_close(singles, grad.transform(X), names)
    reference = reference_features(net, X, "predicted", grad.groups_, statistics)
    assert_matches_reference(names, singles, reference)


def test_a_frozen_parameter_named_in_groups_takes_the_leaves_path_for_one_sample():
    net = randomized(nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)), seed=2)
    net[2].requires_grad_(False)
    X = np.random.default_rng(2).random((3, 5), dtype=np.float32)
    grad = GradientMetricTransformer(net, groups={"last": ["2"]}, device="cpu").fit(X)
    singles = np.concatenate([grad.transform(X[i:i + 1]) for i in range(len(X))])
    assert_features_close(singles, grad.transform(X), list(grad.get_feature_names_out()))
    assert not net[2].weight.requires_grad


class Tokens(nn.Module):
    """Linear layers over 12 tokens (a transformer's MLP), the tokens averaged out."""

    def __init__(self, width=20, hidden=40, classes=3):
        super().__init__()
        self.embed = nn.Linear(6, width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.head = nn.Linear(width, classes)

    def forward(self, x):              # (n, 12, 6)
        h = self.embed(x)
        return self.head((h + self.mlp(h)).mean(1))


def test_norm_only_features_take_the_ghost_norm_and_match_the_reference(monkeypatch):
    """Issue 26: with only L2 norms asked, a Linear over tokens never forms its gradient:
    ||sum_t g_t x_t^T||^2 = sum_{t,s} (g_t . g_s)(x_t . x_s)."""
    from skgradunc._layers import _forms
    torch.manual_seed(4)
    net = randomized(Tokens(), seed=4)
    X = np.random.default_rng(4).standard_normal((5, 12, 6)).astype(np.float32)
    formed = []
    original = _forms.LowRank.dense
    monkeypatch.setattr(_forms.LowRank, "dense",
                        lambda self: formed.append(self.v.shape[-1]) or original(self))
    grad = GradientMetricTransformer(net, statistics=["l2"], softmax_features=False,
                                     batch_size=5, device="cpu").fit(X)
    formed.clear()
    features = grad.transform(X)
    # the MLP's 12 tokens: 12 x (20 + 40) < 20 x 40, its Grams are cheaper than forming
    # the gradient; the embedding's 12 x (20 + 6) > 20 x 6 is formed (6 inputs)
    assert formed == [6]
    names = list(grad.get_feature_names_out())
    reference = reference_features(net, X, "predicted", grad.groups_, ["l2"], softmax=())
    assert_matches_reference(names, features, reference)
    # all statistics: the same layers are formed where the norms alone need not be
    GradientMetricTransformer(net, batch_size=5, device="cpu").fit(X).transform(X)
    assert formed


def test_the_loop_strategy_forced_matches_the_plan():
    net = randomized(PaperCNN(image_size=12, n_classes=3), seed=5)
    X = np.random.default_rng(5).random((5, 1, 12, 12), dtype=np.float32)
    plan = make_plan(Plan.for_network(net, softmax=("entropy",)), net, torch.from_numpy(X[:2]),
                     "cpu")
    planned = compute_features(plan, net, X, device="cpu", batch_size=2)
    looped = compute_features(lay_out(Plan.for_network(net, softmax=("entropy",)), net)
                              .with_strategy("loop"), net, X, device="cpu", batch_size=2)
    assert_features_close(looped, planned, plan.feature_names())


def test_norm_only_self_attention_takes_its_projections_and_matches_the_reference(
        monkeypatch):
    """Issue 26: with only norms asked, MultiheadAttention's projections come from one
    batched pass (their Grams) instead of a per-sample replay; exact."""
    from torchvision.models import VisionTransformer
    from skgradunc._layers import attention
    taken = []
    original = attention.projection_gradients
    monkeypatch.setattr(attention, "projection_gradients",
                        lambda *a, **k: taken.append(1) or original(*a, **k))
    torch.manual_seed(29)
    net = randomized(VisionTransformer(image_size=16, patch_size=8, num_layers=2, num_heads=2,
                                       hidden_dim=16, mlp_dim=32, num_classes=4), seed=29)
    X = torch.rand(5, 3, 16, 16).numpy()
    for statistics, projections in ((["l2"], True), (["l2", "max"], False)):
        taken.clear()
        grad = GradientMetricTransformer(net, statistics=statistics, batch_size=2,
                                         device="cpu").fit(X)
        features = grad.transform(X)
        assert bool(taken) == projections
        reference = reference_features(net, X, "predicted", grad.groups_, statistics)
        assert_matches_reference(list(grad.get_feature_names_out()), features, reference)


@pytest.mark.parametrize("block", [torch.no_grad, torch.inference_mode])
def test_features_inside_no_grad_and_inference_mode_are_the_same(block):
    """Issue 27: inside torch.inference_mode() fit refused the network ("gradient ... does
    not reach the network's output") and transform failed on version counters; the
    engine's own autograd is switched on for its computation only."""
    from skgradunc.detectors import gradnorm_score
    net = randomized(nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)), seed=6)
    X = np.random.default_rng(6).random((7, 5), dtype=np.float32)
    grad = GradientMetricTransformer(net, device="cpu", batch_size=3)
    expected, scores = grad.fit_transform(X), gradnorm_score(net, X, device="cpu")
    with block():
        inside = GradientMetricTransformer(net, device="cpu", batch_size=3).fit_transform(X)
        again = grad.transform(torch.from_numpy(X))
        gradnorm = gradnorm_score(net, X, device="cpu")
        assert not torch.is_grad_enabled()   # the caller's mode is kept
    np.testing.assert_array_equal(inside, expected)
    np.testing.assert_array_equal(again, expected)
    np.testing.assert_array_equal(gradnorm, scores)
    assert all(p.grad is None for p in net.parameters())


def test_a_feature_constant_over_distinct_inputs_is_named():
    """Issue 27: a score that comes out constant says so (here: a last layer of zeros, so
    every gradient of the first layer is zero and the softmax uniform)."""
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    nn.init.zeros_(net[2].weight)
    X = np.random.default_rng(7).random((6, 4), dtype=np.float32)
    with pytest.warns(UserWarning, match=r"10 feature\(s\) are constant over 6 distinct "
                                         r"inputs: \['0__l1', .*'softmax__max_prob'\]"):
        GradientMetricTransformer(net, device="cpu").fit_transform(X)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the same input six times: no warning
        GradientMetricTransformer(net, device="cpu").fit_transform(np.repeat(X[:1], 6, 0))


def _expected_reference(module, X, groups, statistics):
    """ExGrad written out: per sample, sum_k p_k stat(grad of -log p_k), float64, one
    autograd call per class (tests/reference.py's statistics)."""
    import copy
    from reference import reference_statistics
    m64 = copy.deepcopy(module).double().eval()
    params = dict(m64.named_parameters())
    rows = []
    for x in torch.as_tensor(X, dtype=torch.float64):
        logits = m64(x[None])
        p = torch.softmax(logits, -1)[0].detach()
        row = {}
        for k in range(logits.shape[1]):
            grads = torch.autograd.grad(-torch.log_softmax(logits, -1)[0, k],
                                        list(params.values()), retain_graph=True)
            flat = dict(zip(params, (g.detach().numpy().ravel() for g in grads)))
            for group, names in list(groups.items()) + [("network", list(params))]:
                stats = reference_statistics(np.concatenate([flat[n] for n in names]))
                for s in statistics:
                    row[f"{group}__{s}"] = row.get(f"{group}__{s}", 0.0) + float(p[k]) * stats[s]
        rows.append(row)
    return {key: np.array([r[key] for r in rows]) for key in rows[0]}


@pytest.mark.parametrize("batch_size", [4, 1])
def test_the_expected_target_is_exgrad(batch_size):
    """Issue 27: target="expected", each statistic's expectation over the predicted
    distribution (ExGrad with "l2"), against a per-class autograd loop in float64; per
    layer in chunks, and one sample at a time."""
    torch.manual_seed(8)
    net = randomized(PaperCNN(image_size=12, n_classes=3), seed=8)
    X = np.random.default_rng(8).random((5, 1, 12, 12), dtype=np.float32)
    statistics = ["l1", "l2", "max", "std"]
    grad = GradientMetricTransformer(net, target="expected", statistics=statistics,
                                     softmax_features=["max_prob"], batch_size=batch_size,
                                     device="cpu").fit(X)
    features = grad.transform(X)
    names = list(grad.get_feature_names_out())
    reference = _expected_reference(net, X, grad.groups_, statistics)
    plain = GradientMetricTransformer(net, statistics=statistics, device="cpu").fit_transform(X)
    reference["softmax__max_prob"] = plain[:, -1]
    for j, name in enumerate(names):
        np.testing.assert_allclose(features[:, j], reference[name], rtol=1e-4, atol=1e-12,
                                   err_msg=name)
