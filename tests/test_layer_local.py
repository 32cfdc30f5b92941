"""The layer-local fallback (skgradunc/_layers/local.py): layers without a rule get exact
per-sample gradients from their own input and output gradient, so the rest of the
network stays on its rules (issue 12). Every check is against the float64 per-sample
autograd reference."""

import numpy as np
import pytest
import torch
import torchvision

from skgradunc import GradientMetricTransformer
from skgradunc.gradients import TARGETS

from test_gradient_reference import _rules, _strategy, check, randomized

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
                           "3": "LocalRule", "4": "InstanceNormRule", "5": "LocalRule",
                           "8": "LinearRule"}
    check(net, torch.rand(5, 2, 8, 8).numpy(), target)


@pytest.mark.parametrize("target", TARGETS)
def test_volumes_conv3d_and_batchnorm3d(target):
    net = randomized(nn.Sequential(
        nn.Conv3d(1, 3, 3, padding=1), nn.BatchNorm3d(3), nn.ReLU(), nn.Flatten(),
        nn.Linear(3 * 4 * 4 * 4, 3)), seed=22)
    assert _rules(net) == {"0": "LocalRule", "1": "BatchNormRule", "4": "LinearRule"}
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
    assert rules["features.1.block.0.0"] == "LocalRule"            # depthwise
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
    weights) and MultiheadAttention (three inputs): today the whole-network vmap."""
    from torchvision.models import VisionTransformer
    torch.manual_seed(29)
    net = randomized(VisionTransformer(image_size=16, patch_size=8, num_layers=1, num_heads=2,
                                       hidden_dim=16, mlp_dim=32, num_classes=4), seed=29)
    assert _strategy(net) == "vmap"
    check(net, torch.rand(3, 3, 16, 16).numpy(), target, batch_size=2)
