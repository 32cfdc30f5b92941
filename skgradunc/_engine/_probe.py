"""The probe: on a sample or two, before any chunk, settle how this network's per-sample
gradients are computed, and record it in the plan ``fit`` stores."""

import warnings
from dataclasses import replace

import torch
from torch.func import functional_call

from .._gpu_numerics import gpu_numerics
from .._network import evaluation_mode, trainable_parameters
from .._outputs import NetworkOutputError
from ._audit import (NotPerLayer, UnsupportedNetworkError, autograd_on, check_graph,
                     first_line, weights_on_device)
from ._features import FeatureAssembly
from ._loop import OneSampleAtATime
from ._parameters import gradient_parameters, layer_layout, parameter_units
from ._per_layer import PerLayer
from ._vmap import WholeNetworkVmap

__all__ = ["STRATEGY_CLASSES", "lay_out", "make_plan"]

STRATEGY_CLASSES = {"per-layer": PerLayer, "vmap": WholeNetworkVmap, "loop": OneSampleAtATime}
_NEXT = {"per-layer": "vmap", "vmap": "loop"}
_DESCRIBED = {"per-layer": "exact per-layer products", "vmap": "torch.func.vmap",
              "loop": "autograd one sample at a time"}


def lay_out(plan, module):
    """The plan with the network's parameters, units and, where the rules cover every
    layer, the per-layer strategy (else vmap)."""
    groups = dict(plan.groups)
    parameters = gradient_parameters(module, groups)
    units = parameter_units(module, parameters)
    plan = replace(plan, parameters=tuple(parameters),
                   network=tuple(trainable_parameters(module)),
                   units=tuple((name, *units[name]) for name in parameters))
    layout = layer_layout(module, parameters, units)
    if layout is None:
        return plan.with_strategy("vmap")
    layers, broadcast = layout
    return plan.with_strategy("per-layer", ((name, type(rule).__name__)
                                            for name, rule in layers.items()), broadcast)


def _next_strategy(plan, module, params, frozen, x, failures):
    """A strategy failed (``failures``: (strategy, error) so far): an error of the
    network itself is raised as it is (the input's fault); else the next exact strategy
    is taken, with a warning, or none is left."""
    with torch.no_grad():
        functional_call(module, (params, frozen), (x.clone(),))
    failed, error = failures[-1]
    reasons = "; ".join(f"{_DESCRIBED[s]}: {first_line(e)}" for s, e in failures)
    name = type(module).__name__
    if failed not in _NEXT:
        raise UnsupportedNetworkError(
            f"per-sample gradients of {name} could not be computed ({reasons})") from error
    plan = plan.with_strategy(_NEXT[failed])
    warnings.warn(
        f"{_DESCRIBED[failed]} failed for {name} ({first_line(error)}); per-sample "
        f"gradients are computed by {_DESCRIBED[plan.strategy]} instead: exact, but "
        "slower", RuntimeWarning, stacklevel=5)
    return plan


def make_plan(plan, module, x, device, max_memory=None):
    """``plan`` (what to compute) completed with how, settled on the samples ``x``: the
    per-layer rules where they cover the network, down to vmap when a weight is used
    outside its layer's call, and down the exact strategies, with a warning, when one
    fails where the network itself runs (vmap cannot batch nn.GRU: one sample at a time);
    the saved tensors that in-place operations overwrite (so chunks isolate them from the
    start); the output checked. ``max_memory`` bounds the gradients held at once."""
    with autograd_on():
        laid_out = lay_out(plan, module)
        if plan.target != "expected":
            return _probed(laid_out, module, x, device, max_memory)
        # the expectation's terms are losses at one class each: probed at the first
        probed = _probed(replace(laid_out, target=0), module, x, device, max_memory)
        return replace(probed, target="expected")


def _probed(plan, module, x, device, max_memory):
    params, frozen = weights_on_device(module, plan.parameters, device)
    x = x.to(device, copy=True)
    assemble = FeatureAssembly(plan)
    failures = []
    with evaluation_mode(module), gpu_numerics(device, module):
        check_graph(module, plan.parameters, params, frozen, x)
        if plan.strategy == "per-layer" and plan.broadcast:
            try:
                PerLayer(plan, module, device, max_memory).check_broadcast(params, frozen, x)
            except NotPerLayer:
                plan = plan.with_strategy("vmap")
        while True:
            strategy = STRATEGY_CLASSES[plan.strategy](plan, module, device, max_memory)
            try:
                assemble(*strategy.summaries(params, frozen, x.clone()))
                break
            except NotPerLayer:
                plan = plan.with_strategy("vmap")
            except (UnsupportedNetworkError, NetworkOutputError, torch.cuda.OutOfMemoryError):
                raise
            except Exception as exc:  # noqa: BLE001 - the next strategy tells whose fault
                failures.append((plan.strategy, exc))
                plan = _next_strategy(plan, module, params, frozen, x, failures)
    if plan.strategy == "per-layer":
        plan = replace(plan, overwritten=frozenset(strategy.overwritten),
                       uses=tuple((unit, tuple(sorted(counts.items())))
                                  for unit, counts in strategy.per_call.items() if counts))
    return plan
