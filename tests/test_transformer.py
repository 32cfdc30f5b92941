import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skgradunc import CNNClassifier, GradientMetricTransformer, PaperCNN
from skgradunc._engine import Plan, lay_out

from tolerances import assert_features_close


def snapshot(module):
    return {
        "weights": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "grads": {k: None if p.grad is None else p.grad.clone()
                  for k, p in module.named_parameters()},
        "requires_grad": {k: p.requires_grad for k, p in module.named_parameters()},
        "training": {k: m.training for k, m in module.named_modules()},
    }


def assert_same_snapshot(a, b):
    assert a["requires_grad"] == b["requires_grad"]
    assert a["training"] == b["training"]
    for k in a["weights"]:
        assert torch.equal(a["weights"][k], b["weights"][k]), k
    for k in a["grads"]:
        assert (a["grads"][k] is None) == (b["grads"][k] is None), k
        if a["grads"][k] is not None:
            assert torch.equal(a["grads"][k], b["grads"][k]), k


@pytest.mark.parametrize("target", ["predicted", "all_ones", "uniform"])
def test_network_is_never_changed(target):
    module = PaperCNN()
    module.train()                       # train mode before, with a mix of flags
    module.dropout.eval()
    module.conv2.bias.requires_grad_(False)
    module(torch.rand(4, 1, 28, 28)).sum().backward()  # existing .grad values
    before = snapshot(module)
    out = GradientMetricTransformer(module, target=target).fit_transform(
        np.random.rand(6, 1, 28, 28).astype(np.float32))
    assert_same_snapshot(before, snapshot(module))
    # frozen parameters are not part of the gradient: conv2 is covered by its weight only
    grad = GradientMetricTransformer(module).fit(np.random.rand(1, 1, 28, 28).astype(np.float32))
    assert grad.groups_["conv2"] == ["conv2.weight"]
    assert np.isfinite(out).all()


def test_results_do_not_depend_on_train_mode_or_chunking(fitted_net, digits_split):
    X = digits_split[2][:20]
    grad = GradientMetricTransformer(fitted_net, batch_size=7)
    a = grad.fit_transform(X)
    fitted_net.module_.train()
    try:
        b = GradientMetricTransformer(fitted_net, batch_size=256).fit_transform(X)
    finally:
        fitted_net.module_.eval()
    # float32 kernels round differently for other batch sizes: agree to float32 tolerance
    assert_features_close(b, a, grad.get_feature_names_out())


def test_accepts_skorch_net_frozen_estimator_and_module(fitted_net, digits_split):
    X = digits_split[2][:8]
    results = [GradientMetricTransformer(est).fit_transform(X) for est in
               (fitted_net, FrozenEstimator(fitted_net), fitted_net.module_)]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_feature_names_and_pandas_output(fitted_net, digits_split):
    grad = GradientMetricTransformer(FrozenEstimator(fitted_net)).set_output(transform="pandas")
    frame = grad.fit_transform(digits_split[2][:5])
    assert isinstance(frame, pd.DataFrame) and frame.shape == (5, 42)
    assert list(frame.columns[:3]) == ["conv1__l1", "conv1__l2", "conv1__min"]
    assert {"network__kurtosis", "softmax__entropy", "softmax__max_prob", "dense__l2"} <= set(
        frame.columns)
    assert list(grad.get_feature_names_out()) == list(frame.columns)
    assert frame["softmax__entropy"].between(0, 1).all()


def test_feature_selection_parameters(fitted_net, digits_split):
    X = digits_split[2][:3]
    grad = GradientMetricTransformer(fitted_net, groups=["conv3", "dense.weight"],
                                     statistics=["l2", "min"], include_network=False,
                                     softmax_features=["max_prob"]).fit(X)
    assert list(grad.get_feature_names_out()) == [
        "conv3__l2", "conv3__min", "dense.weight__l2", "dense.weight__min", "softmax__max_prob"]
    assert grad.transform(X).shape == (3, 5)
    only_softmax = GradientMetricTransformer(fitted_net, statistics=[], include_network=False)
    # another forward than skorch's (functional_call, float64 softmax): float32 tolerance
    np.testing.assert_allclose(only_softmax.fit_transform(X)[:, 1],
                               fitted_net.predict_proba(X).max(1), rtol=1e-4)


def test_unfitted_sklearn_estimator_is_cloned_and_fitted(digits_split):
    X, y = digits_split[0][:64], digits_split[1][:64]
    net = CNNClassifier(lr=0.01, max_epochs=1, verbose=0, train_split=None, random_state=0)
    grad = GradientMetricTransformer(net).fit(X, y)
    assert grad.estimator_ is not net and not hasattr(net, "module_")
    assert grad.transform(X[:2]).shape == (2, 42)
    with pytest.raises(NotFittedError, match="not fitted and no y"):
        GradientMetricTransformer(net).fit(X)


def test_clone_shares_a_fitted_network_and_pickle_round_trips(fitted_net, digits_split):
    X = digits_split[2][:6]
    grad = GradientMetricTransformer(fitted_net, batch_size=3)
    twin = clone(grad)
    assert twin.estimator is fitted_net and twin.batch_size == 3
    assert not hasattr(twin, "groups_")
    fitted = grad.fit(X)
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    # the network is in the pickle once, as estimator_; module_ is found in it again
    assert "module_" not in fitted.__getstate__() and hasattr(fitted, "module_")
    assert loaded.module_ is loaded.estimator_.module_
    bare = GradientMetricTransformer(torch.nn.Sequential(torch.nn.Linear(4, 3)))
    again = pickle.loads(pickle.dumps(bare.fit(np.zeros((2, 4), np.float32))))
    assert again.module_ is again.estimator_


def test_clone_keeps_set_output_so_named_features_reach_the_next_step(
        fitted_net, digits_split):
    """Before: clone dropped set_output(transform="pandas"), and a SingleMetricClassifier
    naming its column failed inside cross_val_score."""
    from skgradunc import SingleMetricClassifier
    X, y = digits_split[2][:60], digits_split[3][:60]
    y_meta = (fitted_net.predict(X) == y).astype(int)
    grad = GradientMetricTransformer(FrozenEstimator(fitted_net)).set_output(transform="pandas")
    assert isinstance(clone(grad).fit_transform(X[:2]), pd.DataFrame)
    pipe = make_pipeline(grad, SingleMetricClassifier("softmax__entropy"))
    scores = cross_val_score(pipe, X, y_meta, cv=2, scoring="roc_auc")
    assert np.isfinite(scores).all()


def test_pipeline_cross_validation_and_grid_search_never_refit_the_network(
        fitted_net, digits_split):
    X, y = digits_split[2][:120], digits_split[3][:120]
    y_meta = (fitted_net.predict(X) == y).astype(int)
    weights = {k: v.clone() for k, v in fitted_net.module_.state_dict().items()}
    epochs = len(fitted_net.history)
    pipe = make_pipeline(GradientMetricTransformer(FrozenEstimator(fitted_net)),
                         StandardScaler(), LogisticRegression(max_iter=500))
    scores = cross_val_score(pipe, X, y_meta, cv=3, scoring="roc_auc")
    assert scores.shape == (3,) and np.isfinite(scores).all()
    search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0],
                                 "gradientmetrictransformer__statistics": [["l2"], "all"]},
                          cv=2, scoring="roc_auc").fit(X, y_meta)
    assert search.predict_proba(X[:4]).shape == (4, 2)
    # a plain (not frozen) fitted net is shared by clone too
    cross_val_score(make_pipeline(GradientMetricTransformer(fitted_net), StandardScaler(),
                                  LogisticRegression(max_iter=500)), X, y_meta, cv=2)
    assert len(fitted_net.history) == epochs
    for k, v in fitted_net.module_.state_dict().items():
        assert torch.equal(v, weights[k]), k


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make_X, error, match", [
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), ValueError, "NaN"),
    (lambda X: np.full_like(X, -np.inf), ValueError, "infinity"),
    (lambda X: np.repeat(X, 3, axis=1), ValueError, r"\(3, 28, 28\).*expects \(1, 28, 28\)"),
    (lambda X: X[:, :, :16, :16], ValueError, r"\(1, 16, 16\)"),
    (lambda X: X[:0], ValueError, "empty"),
    (lambda X: X.astype(np.int64), TypeError, "dtype int64"),
])
def test_bad_inputs_are_refused_clearly(fitted_net, digits_split, make_X, error, match):
    X = digits_split[2][:4]
    grad = GradientMetricTransformer(fitted_net).fit(X)
    with pytest.raises(error, match=match):
        grad.transform(make_X(X))
    with pytest.raises(error, match=match):
        GradientMetricTransformer(fitted_net).fit(make_X(X))


def test_module_without_known_shape_reports_what_failed():
    mlp = torch.nn.Sequential(torch.nn.Linear(5, 3))
    with pytest.raises(ValueError, match=r"could not process inputs of shape \(4,\)"):
        GradientMetricTransformer(mlp).fit_transform(np.random.rand(3, 4).astype(np.float32))
    grad = GradientMetricTransformer(mlp).fit(np.random.rand(3, 5).astype(np.float32))
    with pytest.raises(ValueError, match="X has 4 features, but GradientMetricTransformer is "
                                         "expecting 5 features"):
        grad.transform(np.random.rand(3, 4).astype(np.float32))


@pytest.mark.parametrize("params, match", [
    ({"target": "label"}, "unknown target"),
    ({"statistics": ["l2", "median"]}, r"unknown statistics \['median'\]"),
    ({"softmax_features": ["margin"]}, "unknown softmax_features"),
    ({"groups": ["conv9"]}, r"unknown layer or parameter 'conv9'.*conv1"),
    ({"groups": "block"}, "groups must be"),
    ({"groups": {"network": ["conv1"]}}, "reserved"),
    ({"batch_size": 0}, "batch_size"),
    ({"statistics": [], "softmax_features": False}, "no features"),
])
def test_bad_parameters_are_refused_clearly(fitted_net, params, match):
    with pytest.raises(ValueError, match=match):
        GradientMetricTransformer(fitted_net, **params).fit(np.zeros((1, 1, 28, 28), np.float32))


def test_unfitted_transformer_and_missing_estimator():
    with pytest.raises(NotFittedError):
        GradientMetricTransformer(PaperCNN()).transform(np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="estimator is None"):
        GradientMetricTransformer(None).fit(np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(TypeError, match="cannot find a torch module"):
        GradientMetricTransformer(StandardScaler().fit([[0.0]])).fit(np.zeros((1, 1), np.float32))


def test_cuda_requested_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: tested in test_cuda_agrees_with_cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        GradientMetricTransformer(PaperCNN(), device="cuda").fit(
            np.zeros((1, 1, 28, 28), np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_agrees_with_cpu(fitted_net, digits_split):
    X = digits_split[2][:64]
    cpu = GradientMetricTransformer(fitted_net, device="cpu").fit_transform(X)
    # in full float32 whatever the TF32 setting (skgradunc/_gpu_numerics.py)
    gpu = GradientMetricTransformer(fitted_net, device="cuda").fit_transform(X)
    names = GradientMetricTransformer(fitted_net).fit(X).get_feature_names_out()
    assert_features_close(gpu, cpu, names)  # a near-zero skewness had no absolute floor


def test_max_memory_bounds_each_layers_gradient_block(monkeypatch):
    import torchvision
    from skgradunc._layers import LowRank, Outer, _registry

    held = []  # (samples in the block, bytes of materialised per-sample gradients)

    def materialised(g):
        if isinstance(g, Outer):
            return 0
        if isinstance(g, LowRank):  # its product is formed for |g|, min and max
            return g.u.shape[0] * g.u.shape[2] * g.v.shape[2] * g.u.element_size()
        return g.numel() * g.element_size()
    original = _registry.summed

    def spy(per_call):   # a layer's gradients of one block of samples, its calls summed
        grads = original(per_call)
        held.append((len(next(iter(grads.values())).u if isinstance(
            next(iter(grads.values())), (Outer, LowRank)) else next(iter(grads.values()))),
            sum(materialised(g) for g in grads.values())))
        return grads
    monkeypatch.setattr(_registry, "summed", spy)
    resnet = torchvision.models.resnet18(num_classes=10).eval()
    X = np.random.rand(6, 3, 32, 32).astype(np.float32)
    budget = 2**21  # 2 MB: layer3's 3x3 convolutions (2.4 MB a sample) go one at a time
    bounded = GradientMetricTransformer(resnet, max_memory=budget, statistics=["l2", "max"])
    features = bounded.fit_transform(X)
    assert all(samples == 1 or size <= budget for samples, size in held)
    assert {samples for samples, _ in held} > {1, 6}  # blocks of every size in between
    assert max(size for _, size in held) > budget  # one sample alone may exceed it
    # results do not depend on the bound; the chunk is not shrunk by it
    free = GradientMetricTransformer(resnet, max_memory=None, statistics=["l2", "max"])
    assert_features_close(features, free.fit_transform(X), bounded.get_feature_names_out())
    with pytest.raises(ValueError, match="max_memory"):
        GradientMetricTransformer(resnet, max_memory=0).fit(X)


def test_out_of_gpu_memory_halves_the_chunk_and_retries(monkeypatch):
    from skgradunc._engine._per_layer import PerLayer

    original = PerLayer.summaries
    sizes = []

    def limited(self, params, frozen, x):
        sizes.append(len(x))
        if len(x) > 3:  # as if more than 3 samples did not fit on the GPU
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, params, frozen, x)
    net = PaperCNN(image_size=12, n_classes=3)
    X = np.random.rand(10, 1, 12, 12).astype(np.float32)
    grad = GradientMetricTransformer(net, batch_size=4)
    expected, names = grad.fit_transform(X), grad.get_feature_names_out()
    monkeypatch.setattr(PerLayer, "summaries", limited)
    with pytest.warns(RuntimeWarning) as record:
        features = GradientMetricTransformer(net, batch_size=16).fit_transform(X)
    assert [("chunks of 5 samples" in str(w.message), "chunks of 2 samples" in str(w.message))
            for w in record] == [(True, False), (False, True)]  # one warning per halving
    # fit's probe (two samples), then transform's chunks: halved until they fit, then kept
    assert sizes == [2, 10, 5, 2, 2, 2, 2, 2]
    # other chunk sizes round differently: a near-zero skewness differed by 2e-5 relative
    assert_features_close(features, expected, names)
    # not even one sample fits: the error is raised after the last halving
    fitted = GradientMetricTransformer(net, batch_size=2).fit(X)
    from skgradunc._engine._loop import OneSampleAtATime
    for strategy in (PerLayer, OneSampleAtATime):   # one sample: plain autograd
        monkeypatch.setattr(strategy, "summaries", lambda *a: (_ for _ in ()).throw(
            torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")))
    with pytest.raises(torch.cuda.OutOfMemoryError), pytest.warns(RuntimeWarning):
        fitted.transform(X)


def test_sample_block_and_vmap_chunk_follow_max_memory():
    from skgradunc._engine._vmap import WholeNetworkVmap
    from skgradunc._layers import BLOCK_BYTES, block_budget, sample_block

    assert sample_block(256, 1000, 10_000) == 10 and sample_block(256, 1000, 1) == 1
    assert sample_block(256, 1000, None) == 256 and sample_block(4, 10**9, 10) == 1
    # the CPU keeps blocks cache-sized, a GPU takes what max_memory allows
    assert block_budget(None, "cpu") == BLOCK_BYTES == block_budget(2**40, "cpu")
    assert block_budget(1000, "cpu") == 1000
    assert block_budget(None, "cuda") is None and block_budget(2**40, "cuda") == 2**40
    # a top-level weight beside layers: vmap holds every weight's gradient per sample
    module = _Scaled(8)
    plan = lay_out(Plan.for_network(module, statistics=["l2"]), module)
    assert plan.strategy == "vmap"
    per_sample = 3 * 4 * sum(p.numel() for p in module.parameters())

    def chunk(batch_size, max_memory):
        return WholeNetworkVmap(plan, module, "cpu", max_memory).chunk_size(batch_size)
    assert chunk(256, 100 * per_sample) == 100
    assert chunk(256, None) == 256 and chunk(256, 1) == 1


class _DoublesInPlace(torch.nn.Module):
    """Works in place on its input: x.mul_(2), then a ReLU(inplace=True)."""

    def __init__(self, middle):
        super().__init__()
        self.first = torch.nn.Linear(4, 6)
        self.middle = middle
        self.out = torch.nn.Linear(6, 3)

    def forward(self, x):
        x.mul_(2)
        return self.out(torch.relu_(self.middle(self.first(torch.relu_(x)))))


class _TiedTwice(torch.nn.Module):
    """A weight used by its layer and again outside it: the whole-network vmap path."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(6, 6)

    def forward(self, h):
        return self.linear(h) + torch.nn.functional.linear(h, self.linear.weight)


@pytest.mark.parametrize("middle, strategy", [
    (torch.nn.Identity(), "per-layer"), (torch.nn.GroupNorm(2, 6), "per-layer"),
    (_TiedTwice(), "vmap")], ids=["per-layer", "per-layer-groupnorm", "vmap"])
def test_the_callers_X_is_never_changed(middle, strategy):
    """Before: torch.from_numpy shared X's memory with a module working in place on its
    input, so transform changed the caller's array and features drifted call by call."""
    X = np.random.randn(5, 4).astype(np.float32)
    before = X.copy()
    grad = GradientMetricTransformer(_DoublesInPlace(middle), batch_size=2)
    first = grad.fit_transform(X)
    assert grad.strategy_ == strategy
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(grad.transform(X), first)
    np.testing.assert_array_equal(X, before)


class _Recurrent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(4, 5, batch_first=True)
        self.out = torch.nn.Linear(5, 3)

    def forward(self, x):
        sequence, _ = self.gru(x)
        return self.out(sequence[:, -1])


def test_networks_vmap_cannot_batch_are_computed_one_sample_at_a_time():
    """Before: nn.GRU failed with "could not process inputs" (vmap has no rule for it)."""
    from reference import assert_matches_reference, reference_features
    from skgradunc.statistics import STATISTICS
    torch.manual_seed(0)
    module = _Recurrent().eval()
    X = np.random.randn(5, 6, 4).astype(np.float32)
    grad = GradientMetricTransformer(module, batch_size=2)
    with pytest.warns(RuntimeWarning, match="vmap failed .* autograd one sample at a time"):
        grad.fit(X)
    assert grad.strategy_ == "loop"
    features = grad.transform(X)
    reference = reference_features(module, X, "predicted", grad.groups_, STATISTICS)
    assert_matches_reference(list(grad.get_feature_names_out()), features, reference)


class _Scaled(torch.nn.Module):
    """A Linear network whose output is scaled by a weight of the network itself."""

    def __init__(self, n_in=4):
        super().__init__()
        self.hidden = torch.nn.Linear(n_in, 16)
        self.out = torch.nn.Linear(16, 3)
        self.scale = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x))) * self.scale


def test_strategy_says_how_gradients_are_computed():
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 3))
    X = np.random.rand(3, 4).astype(np.float32)
    assert GradientMetricTransformer(mlp).fit(X).strategy_ == "per-layer"
    # a layer without a rule (GroupNorm): the layer-local fallback, still per layer
    norm = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GroupNorm(2, 4),
                               torch.nn.Linear(4, 3))
    assert GradientMetricTransformer(norm).fit(X).strategy_ == "per-layer"
    # a weight of a module whose children hold weights: no layer of its own, vmap
    assert GradientMetricTransformer(_Scaled()).fit(X).strategy_ == "vmap"
