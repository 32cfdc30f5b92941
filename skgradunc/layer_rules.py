"""Per-layer rules for your own layer types, and a check of any rule.

The gradient engine computes each layer's per-sample parameter gradients from the
layer's input and the loss gradient at its output. Built-in rules cover Linear,
Conv1d/2d, BatchNorm, LayerNorm, GroupNorm, InstanceNorm, PReLU and Embedding; any other
layer holding its own weights is computed exactly by a layer-local fallback (vmap over
that layer alone). A rule of your own for a layer type makes it as fast as a built-in
one; :func:`check_layer_rule` verifies it against a float64 per-sample autograd loop
before you rely on it.

Examples
--------
>>> import torch
>>> from skgradunc.layer_rules import LayerRule, check_layer_rule, register_layer_rule
>>> class Scale(torch.nn.Module):                     # y = x * weight, per feature
...     def __init__(self, n):
...         super().__init__()
...         self.weight = torch.nn.Parameter(torch.ones(n))
...     def forward(self, x):
...         return x * self.weight
>>> @register_layer_rule(Scale)
... class ScaleRule(LayerRule):
...     def parameters(self, layer):
...         return ("weight",)
...     def gradients(self, layer, x, grad_out, tensors):
...         return {"weight": grad_out * x}           # (n, features): one row a sample
>>> check_layer_rule(Scale(3), torch.randn(4, 3))     # raises if the rule is wrong
"""

import copy

import numpy as np
import torch

from ._layers import LayerRule, choose_rule, dense, layer_tensors, register_rule

__all__ = ["LayerRule", "register_layer_rule", "check_layer_rule"]


def register_layer_rule(*layer_types, replace=False):
    """Class decorator: use an instance of the decorated :class:`LayerRule` for every
    layer of exactly these types (or of a subclass that keeps their forward unchanged).

    The rule is used only for layers without hooks or parametrisations, whose weights
    are used in their own calls alone (checked on every chunk); check it first with
    :func:`check_layer_rule`. A type that has a rule already (a built-in one, or one
    of yours) keeps it unless ``replace=True``.

    Parameters
    ----------
    *layer_types : type
        The torch.nn.Module subclasses the rule is exact for: layer types with a
        forward of their own (not ``torch.nn.Module`` itself or a container).
    replace : bool, default=False
        Replace the rule of a type that has one; without it that is an error.

    Returns
    -------
    callable
        The class decorator: it registers an instance of the :class:`LayerRule`
        subclass it decorates and returns that class unchanged.

    Raises
    ------
    TypeError
        When no type is given, one is not a layer type, or the decorated class is
        not a :class:`LayerRule` implementing ``gradients`` (checked before anything
        is registered).
    ValueError
        When a type has a rule already and ``replace`` is False.

    Examples
    --------
    A layer without a rule takes the layer-local fallback (``"LocalRule"``) until a
    rule is registered for its type:

    >>> import numpy as np
    >>> import torch
    >>> from skgradunc import GradientMetricTransformer
    >>> from skgradunc.layer_rules import LayerRule, check_layer_rule, register_layer_rule
    >>> class Gate(torch.nn.Module):                     # y = x * sigmoid(w), per feature
    ...     def __init__(self, n):
    ...         super().__init__()
    ...         self.weight = torch.nn.Parameter(torch.zeros(n))
    ...     def forward(self, x):
    ...         return x * torch.sigmoid(self.weight)
    >>> net = torch.nn.Sequential(Gate(4), torch.nn.Linear(4, 3))
    >>> X = np.random.RandomState(0).rand(5, 4).astype(np.float32)
    >>> GradientMetricTransformer(net).fit(X).layer_rules_
    {'0': 'LocalRule', '1': 'LinearRule'}
    >>> @register_layer_rule(Gate)
    ... class GateRule(LayerRule):
    ...     def parameters(self, layer):
    ...         return ("weight",)
    ...     def gradients(self, layer, x, grad_out, tensors):
    ...         gate = torch.sigmoid(tensors["weight"])
    ...         return {"weight": grad_out * x * gate * (1 - gate)}
    >>> check_layer_rule(Gate(4), torch.from_numpy(X))
    >>> GradientMetricTransformer(net).fit(X).layer_rules_
    {'0': 'GateRule', '1': 'LinearRule'}
    """
    return register_rule(*layer_types, replace=replace)


def check_layer_rule(layer, x, rule=None, *, rtol=1e-4, atol=1e-6, seed=0):
    """Verify a per-layer rule against float64 per-sample autograd.

    For each sample of ``x`` the layer (copied to float64) is run alone and the gradient
    of its output, against a random output gradient, is taken with respect to each of
    its parameters; the rule gets the whole batch (float32) and the same output
    gradients. Per sample and parameter, the sorted values must agree (rules may return
    a gradient's elements in any order).

    Parameters
    ----------
    layer : torch.nn.Module
        The layer to check the rule on; it is copied, never changed.
    x : torch.Tensor, (n_samples, ...)
        Inputs of the layer.
    rule : LayerRule, optional
        Default: the rule the engine would choose for ``layer`` (its registered rule, or
        the layer-local fallback).
    rtol, atol : float
        Tolerances of the comparison (float32 against float64).
    seed : int
        Seeds the random output gradients.

    Raises
    ------
    AssertionError
        Naming the parameter and the sample where the rule is wrong.
    ValueError
        When no rule applies to ``layer``.

    Examples
    --------
    >>> import torch
    >>> from skgradunc.layer_rules import LayerRule, check_layer_rule
    >>> layer, x = torch.nn.Linear(3, 2), torch.randn(4, 3)
    >>> check_layer_rule(layer, x)            # the built-in rule for Linear: no error
    >>> class WrongLinearRule(LayerRule):     # doubles the bias gradient
    ...     def gradients(self, layer, x, grad_out, tensors):
    ...         return {"weight": grad_out[:, :, None] * x[:, None, :], "bias": 2 * grad_out}
    >>> check_layer_rule(layer, x, WrongLinearRule())
    Traceback (most recent call last):
    ...
    AssertionError: 'bias', sample 0: the rule's gradient differs from float64 autograd ...
    """
    if not isinstance(layer, torch.nn.Module):
        raise TypeError(f"layer must be a torch.nn.Module, got {type(layer).__name__}")
    x = torch.as_tensor(x)
    if x.dim() == 0 or len(x) == 0:
        raise ValueError(f"x must hold at least one sample along its first axis, got shape "
                         f"{tuple(x.shape)}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinity")
    if rule is not None and not isinstance(rule, LayerRule):
        hint = (f"; pass an instance, {rule.__name__}()" if isinstance(rule, type)
                and issubclass(rule, LayerRule) else "")
        raise TypeError(f"rule must be a LayerRule instance, got {rule!r}{hint}")
    names = [name for name, _ in layer.named_parameters(recurse=False)]
    rule = rule or choose_rule(layer, names)
    if rule is None:
        raise ValueError(f"no rule applies to this {type(layer).__name__}")
    if type(rule).summaries is not LayerRule.summaries:
        raise ValueError(f"{type(rule).__name__} replays whole calls of a "
                         f"{type(layer).__name__} (several inputs): check it on a network with "
                         "the float64 reference instead")
    layer64 = copy.deepcopy(layer).double().eval()
    x64 = x.double() if x.is_floating_point() else x
    out = _run_alone(layer64, x64)
    generator = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    own = dict(layer64.named_parameters(recurse=False))
    wanted = [name for name in rule.parameters(layer) if own.get(name) is not None]
    expected = []
    for i in range(len(x)):
        out_i = layer64(x64[i:i + 1])
        grads = torch.autograd.grad(out_i, [own[n] for n in wanted], grad_out[i:i + 1],
                                    allow_unused=True, materialize_grads=True)
        expected.append(dict(zip(wanted, grads)))
    layer32 = copy.deepcopy(layer).eval()    # the user's layer keeps its mode
    tensors = layer_tensors(layer32)
    with torch.no_grad():
        found = rule.gradients(layer32, x.float() if x.is_floating_point() else x,
                               grad_out.float(), tensors)
    for name in wanted:
        if name not in found:
            raise AssertionError(f"the rule gives no gradient for {name!r}")
        ours = dense(found[name]).detach().double().reshape(len(x), -1)
        for i in range(len(x)):
            theirs = expected[i][name].reshape(-1)
            if ours[i].numel() != theirs.numel():
                raise AssertionError(f"{name!r}, sample {i}: {ours[i].numel()} values, "
                                     f"the reference has {theirs.numel()}")
            a, b = np.sort(ours[i].numpy()), np.sort(theirs.numpy())
            if not np.allclose(a, b, rtol=rtol, atol=atol):
                worst = float(np.max(np.abs(a - b)))
                raise AssertionError(f"{name!r}, sample {i}: the rule's gradient differs "
                                     f"from float64 autograd by up to {worst:.3g}")


def _run_alone(layer, x):
    """The layer's output on ``x`` (without autograd), or an error saying why a rule
    cannot be checked on it: it does not run on ``x``, or returns other than one tensor
    (per-layer rules take one tensor in and give one out)."""
    name = type(layer).__name__
    try:
        with torch.no_grad():
            out = layer(x)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        kind = "" if x.is_floating_point() else (
            f"; integer inputs are for layers that take indices (nn.Embedding), a "
            f"{name} may need floats")
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"the {name} could not run on x of shape {tuple(x.shape)} and dtype "
                         f"{x.dtype} ({message}){kind}") from exc
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"the {name} returns {type(out).__name__}, not one tensor: per-layer "
                         "rules are for layers of one tensor in and one out; check a network "
                         "holding it against the float64 reference instead (its gradients "
                         "are computed by the layer-local fallback or vmap)")
    return out
