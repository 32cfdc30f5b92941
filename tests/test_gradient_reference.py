"""Every feature equals the independent float64 reference (tests/reference.py)."""

import warnings

import numpy as np
import pytest
import torch
import torchvision

from skgradunc import GradientMetricTransformer, PaperCNN
from skgradunc._engine import Plan, lay_out, resolve_groups
from skgradunc.statistics import STATISTICS

from devices import DEVICE
from reference import assert_matches_reference, reference_features
from tolerances import assert_features_close

# the targets of one loss each ("expected" sums over the classes: tests/test_engine.py)
TARGETS = ["predicted", "all_ones", "all_ones_sigmoid", "uniform"]


def randomized(module, seed=0):
    """Random weights *and* biases (never zeros), so every statistic is exercised.

    The module's own random initialisation sets the scale (so logits stay O(1): a
    saturated softmax has gradients below float32 resolution), plus a random
    perturbation of every tensor, biases included."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
        for name, b in module.named_buffers():
            if name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
            elif name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
    return module.eval()


def check(module, X, target, groups="layer", batch_size=4, fall_back=False, temperature=1.0,
          device=DEVICE):
    """Features against the reference; unless ``fall_back``, on the strategy the engine
    planned (a strategy that failed and fell back to the next one is a test failure: the
    next one would hide the failure behind its own exact result)."""
    grad = GradientMetricTransformer(module, target=target, groups=groups,
                                     batch_size=batch_size, device=device, temperature=temperature)
    with warnings.catch_warnings():
        if not fall_back:
            warnings.filterwarnings("error", message=".*per-sample gradients are computed by")
        features = grad.fit_transform(X)
    names = list(grad.get_feature_names_out())
    assert features.shape == (len(X), len(names)) and features.dtype == np.float64
    assert np.isfinite(features).all()
    reference = reference_features(module, X, target, grad.groups_, STATISTICS,
                                   temperature=temperature)
    assert_matches_reference(names, features, reference)
    return names, features


@pytest.mark.parametrize("target", TARGETS)
def test_paper_cnn_matches_reference(target):
    torch.manual_seed(1)
    module = randomized(PaperCNN(), seed=1)
    X = torch.rand(10, 1, 28, 28).numpy()
    names, _ = check(module, X, target, batch_size=4)  # 4+4+2: chunks of unequal size
    assert names[:8] == [f"conv1__{s}" for s in STATISTICS]
    assert len(names) == 5 * 8 + 2


@pytest.mark.parametrize("target", TARGETS)
def test_paper_cnn_per_parameter_groups_match_reference(target):
    module = randomized(PaperCNN(in_channels=3, image_size=12, n_classes=5), seed=2)
    X = torch.rand(5, 3, 12, 12).numpy()
    names, _ = check(module, X, target, groups="parameter")
    assert "conv2.bias__kurtosis" in names and "dense.weight__skew" in names


@pytest.mark.parametrize("target", TARGETS)
def test_mlp_on_2d_data_matches_reference(target):
    torch.manual_seed(3)
    mlp = randomized(torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
        torch.nn.Linear(16, 4)), seed=3)
    X = torch.randn(12, 6).numpy()
    names, _ = check(mlp, X, target, groups={"hidden": ["0", "2"], "out": ["4.weight"]})
    assert names[:2] == ["hidden__l1", "hidden__l2"] and "out__max" in names


@pytest.mark.parametrize("target", TARGETS)
def test_inplace_activations_and_norm_layers_match_reference(target):
    """In-place ReLUs overwrite layer outputs; BatchNorm/LayerNorm affine parameters."""
    torch.manual_seed(6)
    net = randomized(torch.nn.Sequential(
        torch.nn.Linear(6, 12), torch.nn.BatchNorm1d(12), torch.nn.ReLU(inplace=True),
        torch.nn.Linear(12, 12), torch.nn.LayerNorm(12), torch.nn.ReLU(inplace=True),
        torch.nn.Linear(12, 4)), seed=6)
    X = torch.randn(9, 6).numpy()
    names, features = check(net, X, target)   # chunks of 4, 4, 1
    assert "1__l2" in names and "4__kurtosis" in names
    overwritten = {("1", 0, "output"), ("4", 0, "output")}  # the norms' outputs, by the ReLUs
    assert GradientMetricTransformer(net).fit(X).overwritten_ == overwritten
    # a plan not told finds them on its first chunk (and redoes it), then keeps them
    from skgradunc._engine._per_layer import PerLayer
    from skgradunc._engine import compute_features
    plan = lay_out(Plan.for_network(net, target, softmax=("entropy", "max_prob")), net)
    assert plan.overwritten == frozenset()
    assert_features_close(compute_features(plan, net, X, device="cpu", batch_size=4),
                          features, names)
    from skgradunc._engine._audit import weights_on_device
    strategy = PerLayer(plan, net, "cpu", None)
    with torch.no_grad():
        strategy.summaries(*weights_on_device(net, plan.parameters, "cpu"),
                           torch.from_numpy(X[:4]))
    assert strategy.overwritten == overwritten


def unit_spread_resnet18(seed, n):
    """A randomized ResNet-18 and n images whose logits spread by about one (a saturated
    softmax has no float32 gradient)."""
    torch.manual_seed(seed)
    resnet = randomized(torchvision.models.resnet18(num_classes=10), seed=seed)
    X = torch.rand(n, 3, 32, 32).numpy()
    with torch.no_grad():
        scale = resnet(torch.from_numpy(X)).std()
        resnet.fc.weight /= scale
        resnet.fc.bias /= scale
    return resnet, X


@pytest.mark.parametrize("target", TARGETS)
def test_resnet18_with_batchnorm_matches_reference(target):
    resnet, X = unit_spread_resnet18(seed=4, n=3)
    names, _ = check(resnet, X, target, batch_size=2)
    assert "layer1.0.bn1__l2" in names and "fc__kurtosis" in names
    layers = [m for m in resnet.modules() if list(m.parameters(recurse=False))]
    assert len(names) == (len(layers) + 1) * len(STATISTICS) + 2  # + network, + softmax


def _laid_out(module, target="predicted"):
    """The plan before the probe: the strategy the layers' rules allow."""
    return lay_out(Plan.for_network(module, target, statistics=["l2"]), module)


def _strategy(module, target="predicted"):
    return _laid_out(module, target).strategy


def _rules(module):
    """{layer name: the name of the rule its per-sample gradients come from}."""
    return dict(_laid_out(module).layers)


@pytest.mark.parametrize("target", TARGETS)
def test_conv1d_network_matches_reference(target):
    """Zero, 'same' and 'valid' padding, stride and dilation; a one-position output."""
    torch.manual_seed(7)
    net = randomized(torch.nn.Sequential(
        torch.nn.Conv1d(3, 6, 5, padding=2), torch.nn.Tanh(),
        torch.nn.Conv1d(6, 6, 3, padding="same", dilation=2), torch.nn.Tanh(),
        torch.nn.Conv1d(6, 5, 3, stride=2), torch.nn.Tanh(),      # length 13 -> 6
        torch.nn.Conv1d(5, 4, 6), torch.nn.Flatten(),             # one position
        torch.nn.Linear(4, 3)), seed=7)
    assert _strategy(net) == "per-layer"
    X = torch.randn(7, 3, 13).numpy()
    names, _ = check(net, X, target)
    assert "0__l2" in names and "6__kurtosis" in names


@pytest.mark.parametrize("target", TARGETS)
def test_convolutions_by_kernel_offsets_match_reference(target, monkeypatch):
    """Every stride-1 convolution through the shifted-view products: 'same', 'valid',
    asymmetric kernels and padding, Conv1d."""
    from skgradunc._layers import conv as gradients, products
    monkeypatch.setattr(gradients, "SHIFTED_MIN_CHANNELS", 1)
    monkeypatch.setattr(products, "LOW_RANK_GAIN", 0)
    used = []
    original = gradients._shifted_conv_gradient
    monkeypatch.setattr(gradients, "_shifted_conv_gradient",
                        lambda layer, x, b: used.append(layer) or original(layer, x, b))
    torch.manual_seed(10)
    nn = torch.nn
    cnn = randomized(PaperCNN(in_channels=2, image_size=16, n_classes=4), seed=10)
    check(cnn, torch.rand(4, 2, 16, 16).numpy(), target)       # conv1, conv2 (16, 8 wide)
    valid = randomized(nn.Sequential(
        nn.Conv2d(2, 3, (3, 2)), nn.Tanh(), nn.Conv2d(3, 3, 3, padding=(2, 1)), nn.Tanh(),
        nn.Flatten(), nn.Linear(3 * 12 * 11, 3)), seed=10)
    check(valid, torch.rand(4, 2, 12, 12).numpy(), target)
    conv1d = randomized(nn.Sequential(
        nn.Conv1d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv1d(4, 4, 5), nn.Flatten(),
        nn.Linear(4 * 16, 3)), seed=10)
    check(conv1d, torch.randn(4, 3, 20).numpy(), target)
    assert {id(m) for m in used} == {id(cnn.conv1), id(cnn.conv2), id(valid[0]), id(valid[2]),
                                     id(conv1d[0]), id(conv1d[2])}


class SequenceClassifier(torch.nn.Module):
    """A Linear applied to every position of a short sequence, then pooled."""

    def __init__(self):
        super().__init__()
        self.per_position = torch.nn.Linear(6, 9)
        self.out = torch.nn.Linear(9, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.per_position(x)).mean(dim=1))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("gain", [0, float("inf")])
def test_layers_with_several_positions_match_reference_materialised_or_low_rank(
        target, gain, monkeypatch):
    """Every multi-position layer (convolutions, a Linear over a sequence) forced through
    the materialised product (gain 0) or the factored LowRank summary (gain inf)."""
    from skgradunc._layers import products
    monkeypatch.setattr(products, "LOW_RANK_GAIN", gain)
    torch.manual_seed(9)
    # 6x6 images: 36, 9 and 1 positions (LowRank's r^2 x r^2 contractions stay small)
    cnn = randomized(PaperCNN(in_channels=2, image_size=6, n_classes=4), seed=9)
    check(cnn, torch.rand(5, 2, 6, 6).numpy(), target)
    sequence = randomized(SequenceClassifier(), seed=9)
    check(sequence, torch.randn(5, 3, 6).numpy(), target)


class TokenClassifier(torch.nn.Module):
    """Token ids (as floats: X is float32) -> embedding -> mean -> classes. With
    ``twice``, the embedding is used on both halves of the sequence, and the two uses'
    gradients must add up."""

    def __init__(self, vocabulary=7, dim=5, padding_idx=0, classes=3, twice=False):
        super().__init__()
        self.twice = twice
        self.embed = torch.nn.Embedding(vocabulary, dim, padding_idx=padding_idx)
        self.out = torch.nn.Linear((1 + twice) * dim, classes)

    def forward(self, x):
        tokens = x.long()
        if not self.twice:
            return self.out(torch.tanh(self.embed(tokens)).mean(dim=1))
        half = tokens.shape[1] // 2
        left = self.embed(tokens[:, :half]).mean(dim=1)
        right = torch.tanh(self.embed(tokens[:, half:])).mean(dim=1)
        return self.out(torch.cat([left, right], dim=1))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("vocabulary, length, twice",
                         [(7, 12, False), (40, 6, False), (7, 12, True)])
def test_embedding_network_matches_reference(target, vocabulary, length, twice):
    """Repeated ids (rows that add up), the padding id (its row stays zero), sequences
    longer and shorter than the vocabulary, an embedding used twice."""
    torch.manual_seed(8)
    net = randomized(TokenClassifier(vocabulary, twice=twice), seed=8)
    assert _strategy(net) == "per-layer"
    X = torch.randint(0, vocabulary, (6, length)).float().numpy()
    X[0, :3] = 0   # padding
    X[1, :] = 2    # one id everywhere
    names, features = check(net, X, target)
    assert "embed__min" in names


@pytest.mark.parametrize("target", TARGETS)
def test_embedding_options_that_couple_rows_leave_the_embedding_rule(target):
    """max_norm renormalises the weight in the forward: whole-network vmap. Frequency
    scaling couples a batch's samples: the layer-local fallback, one sample at a time
    (before issue 12: the whole network on vmap)."""
    net = TokenClassifier()
    net.embed.max_norm = 1.0
    assert _strategy(net) == "vmap"
    torch.manual_seed(8)
    net = randomized(TokenClassifier(), seed=8)
    net.embed.scale_grad_by_freq = True
    assert _strategy(net) == "per-layer"
    X = torch.randint(0, 7, (5, 12)).float().numpy()
    X[1, :] = 2    # one id everywhere: a frequency of 12
    check(net, X, target)


class TiedAutoencoderClassifier(torch.nn.Module):
    """One weight used by two layers (weight tying): every use must count."""

    def __init__(self):
        super().__init__()
        self.encode = torch.nn.Linear(6, 4)
        self.decode = torch.nn.Linear(4, 6)
        self.decode.weight = torch.nn.Parameter(self.encode.weight.T.clone())
        self.classify = torch.nn.Linear(6, 3)
        self.tied = torch.nn.Linear(6, 4, bias=False)
        self.tied.weight = self.encode.weight            # the same Parameter object

    def forward(self, x):
        h = torch.tanh(self.encode(x)) + torch.tanh(self.tied(x))
        return self.classify(torch.tanh(self.decode(h)))


@pytest.mark.parametrize("target", TARGETS)
def test_tied_weights_count_every_use(target):
    torch.manual_seed(5)
    module = randomized(TiedAutoencoderClassifier(), seed=5)
    X = torch.randn(7, 6).numpy()
    grad = GradientMetricTransformer(module, target=target).fit(X)
    assert _strategy(module, target) == "vmap" == grad.strategy_
    check(module, X, target)


class MaskedConv2d(torch.nn.Conv2d):
    """A pruned convolution: its forward multiplies the weight by a fixed mask."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        mask = torch.rand(self.weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5
        self.register_buffer("mask", mask.float())

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class SquaredLinear(torch.nn.Linear):
    """A Linear subclass whose forward is not the base's: F.linear(2x, W**2, b)."""

    def forward(self, x):
        return torch.nn.functional.linear(2 * x, self.weight ** 2, self.bias)


class SamePaddingConv2d(torch.nn.Conv2d):
    """Overrides only what forward calls (_conv_forward), as padding wrappers do."""

    def _conv_forward(self, x, weight, bias):
        return super()._conv_forward(torch.nn.functional.pad(x, [1, 0, 1, 0]), weight, bias)


class NamedLinear(torch.nn.Linear):
    """A subclass that adds an attribute and keeps the base forward: still exact."""

    def __init__(self, *args, label="", **kwargs):
        super().__init__(*args, **kwargs)
        self.label = label


def _subclassed_network():
    nn = torch.nn
    return nn.Sequential(
        MaskedConv2d(1, 4, 3), nn.Tanh(), SamePaddingConv2d(4, 4, 3), nn.Tanh(),
        nn.Flatten(), SquaredLinear(4 * 7 * 7, 8), nn.Tanh(), NamedLinear(8, 3, label="out"))


@pytest.mark.parametrize("target", TARGETS)
def test_subclassed_layers_with_their_own_forward_match_reference(target):
    """A subclass that changes what the layer computes never gets the base class's rule
    (measured before: network__l1 122.4 against the reference's 17.9)."""
    torch.manual_seed(11)
    net = randomized(_subclassed_network(), seed=11)
    check(net, torch.rand(5, 1, 10, 10).numpy(), target)


def test_rules_apply_to_exact_layers_only():
    from skgradunc._layers import rule_for

    def supported_layer(layer):
        return rule_for(layer) is not None
    nn = torch.nn
    assert supported_layer(nn.Linear(2, 3)) and supported_layer(NamedLinear(2, 3))
    assert not supported_layer(SquaredLinear(2, 3))
    assert not supported_layer(MaskedConv2d(1, 2, 3))
    assert not supported_layer(SamePaddingConv2d(1, 2, 3))
    # a forward hook can replace the output, a pre-hook the input or the weight
    hooked = nn.Linear(2, 3)
    hooked.register_forward_hook(lambda module, inputs, output: 2 * output)
    assert not supported_layer(hooked)
    prehooked = nn.Linear(2, 3)
    prehooked.register_forward_pre_hook(lambda module, inputs: None)
    assert not supported_layer(prehooked)
    # parametrisations compute the weight in a property of a generated subclass
    from torch.nn.utils import parametrize
    parametrized = nn.Linear(2, 3)
    parametrize.register_parametrization(parametrized, "bias", _Double())
    assert not supported_layer(parametrized)
    # quantisation-aware training layers fake-quantise their weight in forward
    qat = torch.ao.nn.qat.Linear(2, 3, qconfig=torch.ao.quantization.get_default_qat_qconfig())
    assert not supported_layer(qat)


class _Double(torch.nn.Module):
    def forward(self, x):
        return 2 * x


def _small_mlp(seed):
    nn = torch.nn
    return randomized(nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(),
                                    nn.Linear(6, 3)), seed=seed)


@pytest.mark.parametrize("target", TARGETS)
def test_hooked_layers_match_reference(target):
    """A forward hook that rescales a layer's output changes its weight gradient."""
    torch.manual_seed(12)
    net = _small_mlp(12)
    net[0].register_forward_hook(lambda module, inputs, output: 1.5 * output)
    check(net, torch.randn(6, 5).numpy(), target)


@pytest.mark.parametrize("target", TARGETS)
def test_parametrized_layers_match_reference(target):
    torch.manual_seed(12)
    net = _small_mlp(12)
    from torch.nn.utils import parametrize
    parametrize.register_parametrization(net[2], "bias", _Double())
    check(net, torch.randn(6, 5).numpy(), target)


class OutsideUse(torch.nn.Module):
    """A layer's weight also used outside the layer's call (an output projection tied to
    an input layer through F.linear): every use must count."""

    def __init__(self):
        super().__init__()
        self.encode = torch.nn.Linear(4, 6)
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x):
        h = torch.tanh(self.encode(x))
        back = torch.nn.functional.linear(h, self.encode.weight.T)   # (n, 4)
        return self.head(h) + back[:, :3]


@pytest.mark.parametrize("target", TARGETS)
def test_weights_used_outside_their_layer_match_reference(target):
    torch.manual_seed(13)
    net = randomized(OutsideUse(), seed=13)
    check(net, torch.randn(6, 4).numpy(), target)


@pytest.mark.parametrize("target", TARGETS)
def test_a_forward_replaced_on_the_instance_matches_reference(target):
    """As accelerate's hooks do: layer.forward = ... on the instance, not the class."""
    import types
    torch.manual_seed(14)
    net = _small_mlp(14)
    net[2].forward = types.MethodType(
        lambda self, x: torch.nn.functional.linear(2 * x, self.weight ** 2, self.bias), net[2])
    # never the Linear rule: the layer-local fallback runs the instance's own forward
    assert _rules(net) == {"0": "LinearRule", "2": "LocalRule", "4": "LinearRule"}
    check(net, torch.randn(6, 5).numpy(), target)


class _HiddenOut(torch.nn.Module):
    """hidden: Linear(5, 6), out: Linear(6, 3); the subclasses write the forward."""

    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(5, 6)
        self.out = torch.nn.Linear(6, 3)


class KeywordCall(_HiddenOut):
    def forward(self, x):
        return self.out(input=torch.tanh(self.hidden(x)))


def test_a_layer_called_by_keyword_matches_reference():
    """Its rule reads the positional input: before, "could not process inputs"."""
    torch.manual_seed(15)
    net = randomized(KeywordCall(), seed=15)
    _, features = check(net, torch.randn(6, 5).numpy(), "predicted")
    assert GradientMetricTransformer(net).fit(torch.randn(2, 5).numpy()).strategy_ == "vmap"


class ReadsMetadata(_HiddenOut):
    """Reads its weights' dtype, device and shape, which is no use of their values."""

    def forward(self, x):
        w = self.hidden.weight
        x = x.to(w.dtype).to(w.device).reshape(-1, w.shape[1])
        return self.out(torch.tanh(self.hidden(x)))


def test_reading_a_weights_metadata_keeps_the_per_layer_rules():
    net = randomized(ReadsMetadata(), seed=16)
    assert GradientMetricTransformer(net).fit(torch.randn(2, 5).numpy()).strategy_ == "per-layer"
    check(net, torch.randn(6, 5).numpy(), "predicted")


class OutsideUseForSomeInputs(OutsideUse):
    """Uses a weight outside its layer only for inputs whose first value is large: the
    samples fit looks at do not show it, a later chunk does."""

    def forward(self, x):
        h = torch.tanh(self.encode(x))
        logits = self.head(h)
        if bool((x[:, 0] > 2).any()):
            back = torch.nn.functional.linear(h, self.encode.weight.T)
            logits = logits + back[:, :3]
        return logits


def test_an_outside_use_shown_by_a_later_chunk_switches_to_one_sample_at_a_time():
    torch.manual_seed(17)
    net = randomized(OutsideUseForSomeInputs(), seed=17)
    X = torch.randn(8, 4).clamp(-1.5, 1.5).numpy()
    X[5, 0] = 3.0
    grad = GradientMetricTransformer(net, batch_size=2, device="cpu")
    assert grad.fit(X[:2]).strategy_ == "per-layer"
    # a use only some inputs show comes from data-dependent control flow, which vmap
    # cannot batch: straight to autograd one sample at a time (chunks of 2: a chunk of one
    # sample is plain autograd anyway)
    with pytest.warns(RuntimeWarning, match="other uses .* from 4 on; .* one sample at a time"):
        features = grad.transform(X)
    reference = reference_features(net, X, "predicted", grad.groups_, STATISTICS)
    assert_matches_reference(list(grad.get_feature_names_out()), features, reference)


def test_a_network_changed_after_fit_asks_for_fit_again():
    net = _small_mlp(18)
    grad = GradientMetricTransformer(net).fit(torch.randn(3, 5).numpy())
    net[0].register_forward_hook(lambda module, inputs, output: 2 * output)
    with pytest.raises(ValueError, match="changed since fit.*call fit again"):
        grad.transform(torch.randn(3, 5).numpy())
    # freezing a layer drops it from every gradient: before, 2__l2 became 0 silently
    net = _small_mlp(18)
    grad = GradientMetricTransformer(net).fit(torch.randn(3, 5).numpy())
    net[2].requires_grad_(False)
    with pytest.raises(ValueError, match=r"trainable parameters changed .*'2.bias', "
                                         r"'2.weight'.*call fit again"):
        grad.transform(torch.randn(3, 5).numpy())


class Checkpointed(_HiddenOut):
    """A reentrant activation checkpoint: its layers' outputs are recorded without
    autograd history, so the per-layer products cannot be taken."""

    def forward(self, x):
        from torch.utils.checkpoint import checkpoint
        h = checkpoint(lambda x: torch.tanh(self.hidden(x)), x, use_reentrant=True)
        return self.out(h)


class _Cube(torch.autograd.Function):
    """An old-style autograd.Function (no setup_context): autograd runs it, torch.func
    transforms cannot."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return 3 * x ** 2 * grad


class CustomFunction(torch.nn.Module):
    """The custom function after a weight of the network itself (no layer of its own,
    so no per-layer path): vmap, which fails. (Before issue 12 a PReLU did this; it now
    takes the layer-local fallback.)"""

    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(5, 6)
        self.slope = torch.nn.Parameter(torch.full((6,), 0.25))
        self.out = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.out(_Cube.apply(torch.tanh(self.hidden(x) * self.slope)))


@pytest.mark.parametrize("target", TARGETS)
def test_what_only_autograd_can_differentiate_goes_one_sample_at_a_time(target):
    torch.manual_seed(20)
    net = randomized(CustomFunction(), seed=20)
    X = torch.randn(5, 5).numpy()
    grad = GradientMetricTransformer(net, target=target, batch_size=2, device="cpu")
    with pytest.warns(RuntimeWarning) as record:
        grad.fit(X)
    assert [str(w.message).split(" failed")[0] for w in record] == ["torch.func.vmap"]
    assert grad.strategy_ == "loop"
    reference = reference_features(net, X, target, grad.groups_, STATISTICS)
    assert_matches_reference(list(grad.get_feature_names_out()), grad.transform(X), reference)


class Detached(_HiddenOut):
    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)).detach())


@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad")
@pytest.mark.parametrize("module", [Checkpointed, Detached])
def test_weights_cut_off_from_the_output_are_refused(module):
    """A reentrant checkpoint whose input needs no gradient, or a detach(), cuts a layer
    that runs out of autograd's graph: its gradient is not zero, it is unknown. Before:
    "could not process inputs" for a network that runs."""
    net = randomized(module(), seed=19)
    with pytest.raises(RuntimeError, match=r"\['hidden.weight', 'hidden.bias'\] does not "
                                           r"reach .* requires_grad_\(False\)") as error:
        GradientMetricTransformer(net, device="cpu").fit(torch.randn(6, 5).numpy())
    assert "could not process inputs" not in str(error.value)
    net.hidden.requires_grad_(False)   # as the message advises: the rest is computed
    grad = GradientMetricTransformer(net, device="cpu").fit(torch.randn(6, 5).numpy())
    assert list(grad.groups_) == ["out"]


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("this function has no backward")


class Undifferentiable(_HiddenOut):
    def forward(self, x):
        return self.out(_NoBackward.apply(torch.tanh(self.hidden(x))))


def test_a_network_no_strategy_can_differentiate_is_refused_naming_each_failure():
    """The network runs, so it is not the input's fault: each strategy's failure is named."""
    net = randomized(Undifferentiable(), seed=23)
    with pytest.warns(RuntimeWarning) as record, \
            pytest.raises(RuntimeError, match="could not be computed") as error:
        GradientMetricTransformer(net, device="cpu").fit(torch.randn(6, 5).numpy())
    assert [str(w.message).split(" failed")[0] for w in record] == [
        "exact per-layer products", "torch.func.vmap"]
    message = str(error.value)
    assert "could not process inputs" not in message and "has no backward" in message
    assert all(f"{way}:" in message for way in (
        "exact per-layer products", "torch.func.vmap", "autograd one sample at a time"))


class _ForeignMatmul(torch.autograd.Function):
    """h @ w computed outside torch (as an extension kernel would, through the data),
    with its own backward: no torch function sees w's values, autograd's graph does."""

    @staticmethod
    def forward(ctx, h, w):
        ctx.save_for_backward(h, w)
        return torch.from_numpy(h.detach().numpy() @ w.detach().numpy())

    @staticmethod
    def backward(ctx, grad):
        h, w = ctx.saved_tensors
        return grad @ w.T, h.T @ grad


class ExtensionUse(OutsideUse):
    def forward(self, x):
        h = torch.tanh(self.encode(x))
        return self.head(h) + _ForeignMatmul.apply(h, self.encode.weight)[:, :3]


def test_a_use_through_a_custom_function_counts():
    """Before (a TorchFunctionMode watching torch functions): per-layer, encode__l1 1.62
    against the reference's 3.75."""
    torch.manual_seed(21)
    net = randomized(ExtensionUse(), seed=21)
    X = torch.randn(6, 4).numpy()
    with pytest.warns(RuntimeWarning, match="vmap failed for ExtensionUse") as record:
        # on the CPU: the extension computes through numpy
        assert GradientMetricTransformer(net, device="cpu").fit(X).strategy_ == "loop"
        check(net, X, "predicted", fall_back=True, device="cpu")
    assert len(record) == 2   # one fit each, and each says why


class AuxiliaryHead(torch.nn.Module):
    """A head used in training only (GoogLeNet's, Inception's): no gradient in eval mode."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(5, 6)
        self.aux = torch.nn.Linear(6, 3)
        self.out = torch.nn.Linear(6, 3)

    def forward(self, x):
        h = torch.tanh(self.body(x))
        return (self.out(h), self.aux(h)) if self.training else self.out(h)


@pytest.mark.parametrize("force", [None, "loop"])
def test_a_layer_the_forward_does_not_call_has_zero_gradient(force):
    """Before: "could not process inputs ...: list index out of range" (torchvision's
    googlenet and inception_v3 with their default aux_logits=True)."""
    torch.manual_seed(22)
    net = randomized(AuxiliaryHead(), seed=22)
    X = torch.randn(5, 5).numpy()
    if force:   # one sample at a time: a weight autograd does not reach
        net.out.register_forward_hook(lambda module, inputs, output: output)
        from skgradunc._engine import compute_features
        plan = lay_out(Plan.for_network(net), net).with_strategy("loop")
        features = compute_features(plan, net, X, device="cpu", batch_size=2)
        names = plan.feature_names()
        reference = reference_features(net, X, "predicted", resolve_groups(net), STATISTICS,
                                       softmax=())
    else:
        names, features = check(net, X, "predicted")
        reference = reference_features(net, X, "predicted", resolve_groups(net), STATISTICS)
    assert_matches_reference(names, features, reference)
    assert (features[:, names.index("aux__l2")] == 0).all()


class Aliased(torch.nn.Module):
    """Keeps a parameter in a plain list, where functional_call cannot swap it."""

    def __init__(self):
        super().__init__()
        self.encode = torch.nn.Linear(4, 3)
        self.aliases = [self.encode.weight]

    def forward(self, x):
        return self.encode(x) + x[:, :3] @ self.aliases[0][:, :3].T


def test_a_parameter_reached_through_an_alias_is_refused():
    """Before: its use dropped out of the gradient, whatever the strategy."""
    with pytest.raises(RuntimeError, match="'encode.weight' through a reference"):
        GradientMetricTransformer(Aliased(), device="cpu").fit(torch.randn(3, 4).numpy())


def _five_class_mlp():
    torch.manual_seed(41)
    nn = torch.nn
    return randomized(nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 5)), seed=41)


@pytest.mark.parametrize("target", TARGETS)
def test_confident_predictions_match_reference(target):
    """Confident predictions: in float32 the predicted class's logit gradient p - 1 cancels
    to eps / (1 - p) of relative error (0.6 at 1 - p = 1e-7); target_loss works in
    float64, so the features keep float32's own precision."""
    torch.manual_seed(43)
    module = randomized(PaperCNN(), seed=43)
    X = torch.rand(12, 1, 28, 28)
    with torch.no_grad():   # class 0 ahead by ~14: 1 - p from 1e-7 to 1e-6, every logit
        module.dense.weight *= 6.0  # within 25 of the top (the reference's BCE divides
        module.dense.bias[0] += 14.0   # by max(p (1 - p), 1e-12))
        logits = module(X).double()
        p = torch.softmax(logits, 1).max(1).values
    assert (1 - p).max() < 1e-5 and (1 - p).min() < 1e-6
    assert (logits.max(1).values - logits.min(1).values).max() < 25
    X = X.numpy()
    check(module, X, target)


def test_all_ones_is_q_times_the_uniform_gradient():
    """Lee & AlRegib's all-ones label read with the softmax (their only public code,
    pytorch-ood's GradUncertainty): d/dz -sum_k log p_k = q p - 1 = q (p - 1/q), q times
    the uniform target's logit gradient, so every norm is q times GradNorm's and the
    shape statistics are the same (issue 13; before, per-class sigmoids: Spearman 0.26
    against pytorch-ood's score)."""
    net, X = _five_class_mlp(), torch.randn(9, 4).numpy()
    ones, uniform = (GradientMetricTransformer(net, target=t, softmax_features=False,
                                               device="cpu").fit_transform(X)
                     for t in ("all_ones", "uniform"))
    names = GradientMetricTransformer(net, softmax_features=False).fit(X).get_feature_names_out()
    scaled = [i for i, n in enumerate(names) if n.split("__")[1] in
              ("l1", "l2", "min", "max", "mean", "std")]
    shape = [i for i, n in enumerate(names) if n.split("__")[1] in ("skew", "kurtosis")]
    np.testing.assert_allclose(ones[:, scaled], 5 * uniform[:, scaled], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(ones[:, shape], uniform[:, shape], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("temperature", [0.5, 10.0, 1000.0])
def test_gradnorm_temperature_matches_reference(temperature):
    """GradNorm's T: the uniform target on softmax(z / T). (At T = 1000 the logit gradient
    p - 1/q of a nearly flat softmax kept ~1e-3 of relative error while the loss was
    taken in float32: 7.7e-4 against the float64 reference.)"""
    check(_five_class_mlp(), torch.randn(6, 4).numpy(), "uniform", groups="parameter",
          temperature=temperature)


@pytest.mark.parametrize("kwargs, match", [
    (dict(target="uniform", temperature=0), "temperature must be"),
    (dict(target="uniform", temperature=float("nan")), "temperature must be"),
    (dict(target="uniform", temperature="1"), "temperature must be"),
    (dict(target="predicted", temperature=2.0), "applies to target='uniform'"),
    (dict(target="all_ones", temperature=0.5), "applies to target='uniform'"),
])
def test_temperature_is_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradientMetricTransformer(_five_class_mlp(), **kwargs).fit(torch.randn(3, 4).numpy())
