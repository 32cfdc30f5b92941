"""The layer-local fallback (skgradunc/_layers/local.py): layers without a rule get exact
per-sample gradients from their own input and output gradient, so the rest of the
network stays on its rules (issue 12). Every check is against the float64 per-sample
autograd reference."""

import numpy as np
import pytest
import torch
import torchvision

from skgradunc import GradientMetricTransformer

from test_gradient_reference import TARGETS, _rules, _strategy, check, randomized

nn = torch.nn


def mixed_image_network():
    """Ruled layers (Conv2d, Linear) around layers without rules."""
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.PReLU(4),
        nn.Conv2d(4, 4, 3, groups=4, padding=1),                  # depthwise
        nn.InstanceNorm2d(4, affine=True), nn.ConvTranspose2d(4, 3, 2, stride=2), nn.Tanh(),
        nn.Flatten(), nn.Linear(3 * 16 * 16, 3))


@pytest.mark.parametrize("target", TARGETS)
def test_groupnorm_prelu_depthwise_instancenorm_transposed_conv(target):
    net = randomized(mixed_image_network(), seed=21)
    assert _rules(net) == {"0": "ConvRule", "1": "GroupNormRule", "2": "PReLURule",
                           "3": "ConvRule", "4": "InstanceNormRule", "5": "FoldedConvRule",
                           "8": "LinearRule"}
    check(net, torch.rand(5, 2, 8, 8).numpy(), target)


class Convolutions(nn.Module):
    """Every configuration of the folded convolutions (skgradunc/_layers/conv_folded.py)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 3, groups=2, dilation=2, padding="same",
                            padding_mode="reflect")
        self.c2 = nn.Conv2d(6, 6, (3, 2), stride=(2, 1), groups=3, padding=1,
                            padding_mode="circular", bias=False)
        self.t1 = nn.ConvTranspose1d(6, 4, 3, stride=2, padding=1, output_padding=1,
                                     groups=2)
        self.t2 = nn.ConvTranspose2d(4, 2, 3, stride=2, dilation=2, output_padding=1)
        self.c3 = nn.Conv3d(2, 2, (2, 3, 3), padding="same", groups=2)
        self.t3 = nn.ConvTranspose3d(2, 1, 2, stride=(1, 2, 2))
        self.out = nn.Linear(120, 3)

    def forward(self, x):                          # x: (n, 4, 10)
        h = torch.tanh(self.c1(x)).unsqueeze(-1).expand(-1, -1, -1, 2)   # (n, 6, 10, 2)
        h = torch.tanh(self.t1(torch.tanh(self.c2(h)).mean(-1)))     # (n, 4, 10)
        h = torch.tanh(self.t2(h[:, :, :4, None].expand(-1, -1, -1, 3)))  # (n, 2, 12, 10)
        h = torch.tanh(self.c3(h[:, :, None, :4, :4].expand(-1, -1, 3, -1, -1)))
        h = self.t3(h)                             # (n, 1, 4, 8, 8) -> 256
        return self.out(h.flatten(1)[:, :120])


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # c3, on purpose
@pytest.mark.parametrize("target", TARGETS)
def test_folded_convolutions_in_every_configuration(target):
    net = randomized(Convolutions(), seed=23)
    assert _rules(net) == {"c1": "ConvRule", "c2": "ConvRule", "t1": "FoldedConvRule",
                           "t2": "FoldedConvRule", "c3": "FoldedConvRule",
                           "t3": "FoldedConvRule", "out": "LinearRule"}
    check(net, torch.randn(5, 4, 10).numpy(), target, groups="parameter")


@pytest.mark.parametrize("target", TARGETS)
def test_volumes_conv3d_and_batchnorm3d(target):
    net = randomized(nn.Sequential(
        nn.Conv3d(1, 3, 3, padding=1), nn.BatchNorm3d(3), nn.ReLU(), nn.Flatten(),
        nn.Linear(3 * 4 * 4 * 4, 3)), seed=22)
    assert _rules(net) == {"0": "FoldedConvRule", "1": "BatchNormRule", "4": "LinearRule"}
    check(net, torch.rand(4, 1, 4, 4, 4).numpy(), target, groups="parameter")


class TwiceScaled(nn.Module):
    """A user's own layer: its weight used twice in one call."""

    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, n))

    def forward(self, x):
        return torch.tanh(x * self.weight) + x * self.weight ** 2


class OwnLayerNetwork(nn.Module):
    def __init__(self, reuse_outside=False):
        super().__init__()
        self.hidden = nn.Linear(5, 6)
        self.own = TwiceScaled(6)
        self.out = nn.Linear(6, 3)
        self.reuse_outside = reuse_outside

    def forward(self, x):
        h = self.own(self.own(self.hidden(x)))                    # called twice
        if self.reuse_outside:
            h = h * self.own.weight                                # and used outside
        return self.out(h)


@pytest.mark.parametrize("target", TARGETS)
def test_a_users_own_layer_called_twice(target):
    net = randomized(OwnLayerNetwork(), seed=23)
    assert _rules(net)["own"] == "LocalRule"
    check(net, torch.randn(6, 5).numpy(), target, groups="parameter")


def test_the_fitted_transformer_names_each_layers_rule():
    """layer_rules_ shows users which layers take the (slower) layer-local fallback."""
    net = randomized(OwnLayerNetwork(), seed=23)
    fitted = GradientMetricTransformer(net, device="cpu").fit(torch.randn(4, 5).numpy())
    assert fitted.layer_rules_ == {"hidden": "LinearRule", "own": "LocalRule",
                                   "out": "LinearRule"}


def test_a_weight_also_used_outside_its_layer_leaves_the_per_layer_path():
    net = randomized(OwnLayerNetwork(reuse_outside=True), seed=23)
    torch.manual_seed(27)   # (seed 0 gives one sample a near-zero hidden__l2: float32 noise)
    X = torch.randn(6, 5).numpy()
    grad = GradientMetricTransformer(net, device="cpu").fit(X)
    assert grad.strategy_ == "vmap"
    check(net, X, "predicted")


class WithMask(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 6))

    def forward(self, x, mask=None):
        return x * self.scale * (1 if mask is None else mask)


class CallsWithMask(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.masked, self.out = nn.Linear(5, 6), WithMask(), nn.Linear(6, 3)

    def forward(self, x):
        mask = (x[:, :1] > 0).float()
        return self.out(self.masked(self.hidden(x), mask=mask))


def test_a_layer_called_with_more_than_its_input_is_never_replayed_without_it():
    """Replaying the layer on its first input alone would drop the mask: not recorded,
    so the network leaves the per-layer path."""
    net = randomized(CallsWithMask(), seed=24)
    X = torch.randn(6, 5).numpy()
    assert GradientMetricTransformer(net, device="cpu").fit(X).strategy_ == "vmap"
    assert GradientMetricTransformer(net, device="cpu").fit(X[:1]).strategy_ == "vmap"
    check(net, X, "predicted")


@pytest.mark.parametrize("target", TARGETS)
def test_groupnorm_resnet18(target):
    def group_norm(channels):
        return nn.GroupNorm(min(32, channels // 2), channels)
    net = randomized(torchvision.models.resnet18(num_classes=4, norm_layer=group_norm), seed=25)
    assert _strategy(net) == "per-layer"
    check(net, torch.rand(3, 3, 32, 32).numpy(), target, batch_size=2)


@pytest.mark.parametrize("target", TARGETS)
def test_mobilenet_v3_small(target):
    net = randomized(torchvision.models.mobilenet_v3_small(num_classes=4), seed=26)
    rules = _rules(net)
    assert rules["features.1.block.0.0"] == "ConvRule"             # depthwise: folded
    assert rules["features.1.block.1.fc1"] == "ConvRule"           # squeeze-excitation
    check(net, torch.rand(3, 3, 32, 32).numpy(), target, batch_size=2)


def test_network_and_x_are_never_changed_by_the_fallback():
    from test_transformer import assert_same_snapshot, snapshot
    net = randomized(mixed_image_network(), seed=21).train()
    X = torch.rand(5, 2, 8, 8).numpy()
    before, X_before = snapshot(net), X.copy()
    GradientMetricTransformer(net, device="cpu").fit_transform(X)
    assert_same_snapshot(before, snapshot(net))
    np.testing.assert_array_equal(X, X_before)


@pytest.mark.parametrize("target", TARGETS)
def test_new_rules_in_their_other_configurations(target):
    """One PReLU weight for all channels, GroupNorm on sequences; an InstanceNorm with
    running statistics normalises as BatchNorm does in eval mode: the fallback."""
    net = randomized(nn.Sequential(
        nn.Linear(5, 8), nn.PReLU(), nn.Unflatten(1, (4, 2)), nn.GroupNorm(2, 4),
        nn.InstanceNorm1d(4, affine=True, track_running_stats=True), nn.Flatten(),
        nn.Linear(8, 3)), seed=28)
    assert _rules(net) == {"0": "LinearRule", "1": "PReLURule", "3": "GroupNormRule",
                           "4": "LocalRule", "6": "LinearRule"}
    check(net, torch.randn(6, 5).numpy(), target, groups="parameter")


@pytest.mark.parametrize("target", TARGETS)
def test_small_vision_transformer(target):
    """Class token and position embedding (weights of modules whose children hold
    weights: per-sample copies) and MultiheadAttention (a unit with its out_proj, replayed
    per sample): per layer (before: the whole network on vmap)."""
    from torchvision.models import VisionTransformer
    from test_gradient_reference import _laid_out
    torch.manual_seed(29)
    net = randomized(VisionTransformer(image_size=16, patch_size=8, num_layers=2, num_heads=2,
                                       hidden_dim=16, mlp_dim=32, num_classes=4), seed=29)
    plan = _laid_out(net)
    assert plan.strategy == "per-layer"
    assert plan.broadcast == ("class_token", "encoder.pos_embedding")
    assert _rules(net)["encoder.layers.encoder_layer_1.self_attention"] == "AttentionRule"
    check(net, torch.rand(5, 3, 16, 16).numpy(), target, batch_size=2)
    rules = GradientMetricTransformer(net, device="cpu").fit(
        torch.rand(2, 3, 16, 16).numpy()).layer_rules_
    assert rules["class_token"] == rules["encoder.pos_embedding"] == "per-sample copy"
    assert rules["encoder.layers.encoder_layer_0.self_attention"] == "AttentionRule"
    assert rules["conv_proj"] == "ConvRule" and rules["heads.head"] == "LinearRule"


class Attending(nn.Module):
    """Tokens through MultiheadAttention in its other configurations."""

    def __init__(self, batch_first=True, cross=False, weights_used=False, mask=None):
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.memory = nn.Linear(3, 8)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=batch_first, kdim=8, vdim=8)
        self.out = nn.Linear(8, 3)
        self.batch_first, self.cross, self.weights_used, self.mask = (
            batch_first, cross, weights_used, mask)

    def forward(self, x):                       # x: (n, tokens, 3)
        h = self.embed(x)
        k = self.memory(x.flip(1)) if self.cross else h
        padding = x[:, :, 0] > 1.2               # some tokens masked, never all
        padding[:, 0] = False
        if not self.batch_first:
            h, k = h.transpose(0, 1), k.transpose(0, 1)
        mask = self.mask
        if mask == "per sample and head":
            mask = torch.zeros(len(x) * 2, 5, 5, device=x.device)
            mask[::3, :, -1] = float("-inf")
        y, weights = self.attention(h, k, k, key_padding_mask=padding,
                                    need_weights=self.weights_used, attn_mask=mask)
        if not self.batch_first:
            y = y.transpose(0, 1)
        pooled = y.mean(dim=1)
        if self.weights_used:
            pooled = pooled * weights.sum(dim=(1, 2))[:, None]
        return self.out(torch.tanh(pooled))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("config", [
    dict(), dict(batch_first=False), dict(cross=True), dict(weights_used=True),
    dict(mask=torch.triu(torch.full((5, 5), float("-inf")), diagonal=1))],
    ids=["self", "sequence-first", "cross", "weights-used", "causal-mask"])
def test_multihead_attention_configurations(target, config):
    torch.manual_seed(33)
    net = randomized(Attending(**config), seed=33)
    assert _rules(net)["attention"] == "AttentionRule"
    check(net, (1.5 * torch.rand(6, 5, 3)).numpy(), target)


def test_attention_with_one_mask_per_sample_and_head_takes_the_whole_network_path():
    torch.manual_seed(33)
    net = randomized(Attending(mask="per sample and head"), seed=33)
    X = (1.5 * torch.rand(6, 5, 3)).numpy()
    fitted = GradientMetricTransformer(net, device="cpu").fit(X)
    assert fitted.strategy_ == "vmap" and fitted.layer_rules_ == {}
    check(net, X, "predicted")


class MixesItsToken(nn.Module):
    """A (1, d) weight used by a reduction over its rows: not a per-sample broadcast."""

    def __init__(self):
        super().__init__()
        self.token = nn.Parameter(torch.linspace(-1, 1, 6)[None])
        self.hidden, self.out = nn.Linear(5, 6), nn.Linear(6, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x) + self.token.sum(dim=0)
                                   * self.token.mean()))


def test_a_token_weight_that_mixes_rows_takes_the_whole_network_path():
    torch.manual_seed(34)
    net = randomized(MixesItsToken(), seed=34)
    X = torch.randn(6, 5).numpy()
    assert GradientMetricTransformer(net, device="cpu").fit(X).strategy_ == "vmap"
    assert GradientMetricTransformer(net, device="cpu").fit(X[:1]).strategy_ == "vmap"
    check(net, X, "predicted")
