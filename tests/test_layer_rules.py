"""The public extension point (skgradunc.layer_rules): a user's rule for their own layer
type, and check_layer_rule against float64 per-sample autograd."""

import pytest
import torch

from skgradunc.layer_rules import LayerRule, check_layer_rule, register_layer_rule

from test_gradient_reference import TARGETS, _rules, check, randomized

nn = torch.nn


class SoftGate(nn.Module):
    """A user's layer: y = x * sigmoid(weight) + bias, per feature."""

    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(-1, 1, n))
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, x):
        return x * torch.sigmoid(self.weight) + self.bias


@register_layer_rule(SoftGate)
class SoftGateRule(LayerRule):
    def gradients(self, layer, x, grad_out, tensors):
        gate = torch.sigmoid(tensors["weight"])
        return {"weight": grad_out * x * gate * (1 - gate), "bias": grad_out}


class WrongRule(SoftGateRule):
    def gradients(self, layer, x, grad_out, tensors):
        grads = super().gradients(layer, x, grad_out, tensors)
        grads["weight"] = grads["weight"] * 1.01
        return grads


def test_a_users_rule_is_checked_and_used(monkeypatch):
    gate = randomized(SoftGate(6), seed=30)
    check_layer_rule(gate, torch.randn(5, 6))
    with pytest.raises(AssertionError, match="'weight', sample 0: the rule's gradient differs"):
        check_layer_rule(gate, torch.randn(5, 6), WrongRule())
    net = randomized(nn.Sequential(nn.Linear(4, 6), SoftGate(6), nn.Tanh(),
                                   nn.Linear(6, 3)), seed=30)
    assert _rules(net)["1"] == "SoftGateRule"
    for target in TARGETS:
        check(net, torch.randn(6, 4).numpy(), target, groups="parameter")


@pytest.mark.parametrize("layer, x", [
    (nn.Conv2d(3, 4, 3, padding=1), torch.randn(3, 3, 6, 6)),
    (nn.Conv2d(4, 4, 3, groups=4), torch.randn(3, 4, 6, 6)),         # depthwise: folded
    (nn.Conv3d(2, 3, 2, stride=2), torch.randn(3, 2, 4, 4, 4)),
    (nn.ConvTranspose2d(4, 2, 3, stride=2, groups=2), torch.randn(3, 4, 5, 5)),
    (nn.Conv1d(2, 2, 3, padding=2, padding_mode="replicate"), torch.randn(3, 2, 7)),
    (nn.Linear(5, 4), torch.randn(3, 7, 5)),
    (nn.GroupNorm(2, 4), torch.randn(3, 4, 5)),
    (nn.PReLU(4), torch.randn(3, 4, 5)),
    (nn.LayerNorm(5), torch.randn(3, 2, 5)),
    (nn.Embedding(7, 3, padding_idx=0), torch.randint(0, 7, (3, 9))),
])
def test_every_built_in_rule_passes_the_check(layer, x):
    check_layer_rule(randomized(layer, seed=31), x)


def test_the_check_leaves_the_layer_as_it_was():
    layer = randomized(nn.BatchNorm2d(3), seed=32).train()
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    check_layer_rule(layer, torch.randn(4, 3, 5, 5))
    assert layer.training
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())


def test_a_layer_nothing_applies_to_is_refused():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(2, 2)

        def forward(self, x):
            return self.inner(x)
    with pytest.raises(ValueError, match="no rule applies to this Shared"):
        check_layer_rule(Shared(), torch.randn(2, 2))
    with pytest.raises(ValueError, match="AttentionRule replays whole calls"):
        check_layer_rule(nn.MultiheadAttention(4, 2), torch.randn(2, 3, 4))


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(TypeError, match="must be torch.nn.Module subclasses"):
        register_layer_rule(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        check_layer_rule("linear", torch.randn(2, 2))
    with pytest.raises(ValueError, match="NaN or infinity"):
        check_layer_rule(nn.Linear(2, 2), torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="at least one sample"):
        check_layer_rule(nn.Linear(2, 2), torch.empty(0, 2))


class _Scale(nn.Module):
    def __init__(self, n=3):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x):
        return x * self.weight


def test_registration_refuses_what_is_not_a_rule_or_not_a_layer_type():
    """Issue 25: register_layer_rule(Scale)(int) and a duck-typed non-rule were accepted
    and failed later with AttributeError; nn.Module was accepted and had no effect."""
    from skgradunc._layers import rule_for

    class Duck:
        def gradients(self, layer, x, grad_out, tensors):
            return {}

    class Unfinished(LayerRule):
        pass
    for not_a_rule, message in ((int, "must subclass LayerRule"),
                                (Duck, "must subclass LayerRule"),
                                (Unfinished, "does not implement gradients")):
        with pytest.raises(TypeError, match=message):
            register_layer_rule(_Scale)(not_a_rule)
    assert rule_for(_Scale()) is None                  # nothing was registered
    for not_a_layer in (nn.Module, nn.Sequential, nn.ModuleList):
        with pytest.raises(TypeError, match="not a layer type"):
            register_layer_rule(not_a_layer)

    class Mixin(nn.Module):
        pass
    with pytest.raises(TypeError, match="no forward of its own"):
        register_layer_rule(Mixin)


def test_registering_a_type_twice_is_refused_unless_replace():
    from skgradunc._layers import rule_for

    class Scaled(_Scale):
        def forward(self, x):
            return x * self.weight

    @register_layer_rule(Scaled)
    class First(LayerRule):
        def parameters(self, layer):
            return ("weight",)

        def gradients(self, layer, x, grad_out, tensors):
            return {"weight": grad_out * x}

    with pytest.raises(ValueError, match="Scaled \\(First\\) already registered.*replace=True"):
        @register_layer_rule(Scaled)
        class Second(First):
            pass
    assert type(rule_for(Scaled())) is First
    with pytest.raises(ValueError, match="Linear \\(LinearRule\\) already registered"):
        register_layer_rule(nn.Linear)(First)

    @register_layer_rule(Scaled, replace=True)
    class Third(First):
        pass
    assert type(rule_for(Scaled())) is Third
    check_layer_rule(Scaled(), torch.randn(4, 3))


def test_check_layer_rule_names_what_cannot_be_checked():
    """Issue 25: an LSTM (tuple output), integer inputs and a non-rule gave raw
    AttributeError / RuntimeError."""
    with pytest.raises(ValueError, match="LSTM returns tuple, not one tensor"):
        check_layer_rule(nn.LSTM(3, 2, batch_first=True), torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match="Linear could not run on x of shape \\(2, 2\\) and "
                                         "dtype torch.int64 .* integer inputs"):
        check_layer_rule(nn.Linear(2, 2), torch.ones(2, 2, dtype=torch.int64))
    check_layer_rule(nn.Embedding(5, 3), torch.tensor([[1, 2], [3, 4]]))  # indices: fine
    with pytest.raises(TypeError, match="rule must be a LayerRule instance, got 3"):
        check_layer_rule(nn.Linear(2, 2), torch.randn(2, 2), rule=3)
    with pytest.raises(TypeError, match="pass an instance, LocalRule\\(\\)"):
        from skgradunc._layers.local import LocalRule
        check_layer_rule(nn.Linear(2, 2), torch.randn(2, 2), rule=LocalRule)
