"""Which parameters gradients are taken of, how they form groups, and which layer (unit)
computes each one's per-sample gradient."""

from collections import OrderedDict

import torch

from .._layers import choose_rule, rule_for
from .._network import trainable_parameters

__all__ = ["resolve_groups", "gradient_parameters", "parameter_units", "layer_layout"]


def _layer_groups(trainable):
    groups = OrderedDict()
    for name in trainable:
        layer = name.rpartition(".")[0] or "module"
        groups.setdefault(layer, []).append(name)
    return groups


def _members(names, member):
    """The parameter names that layer or parameter name ``member`` covers."""
    return [p for p in names if p == member or p.startswith(member + ".")
            or member == "module" and "." not in p]


def resolve_groups(module, groups="layer"):
    """Map group names to the parameter names they cover, in module order.

    Parameters
    ----------
    module : torch.nn.Module
    groups : "layer", "parameter", list of str or dict of str -> list of str
        ``"layer"``: one group per layer (a module's weight and bias together,
        the paper's "layerwise"; a top-level parameter belongs to "module").
        ``"parameter"``: one group per parameter tensor (``conv1.weight``...).
        A list of layer or parameter names: one group each. A dict: group name
        -> list of layer or parameter names. A named layer or parameter whose weights
        are all frozen (``requires_grad=False``) is taken as well: gradients can be
        taken with respect to frozen weights.
    """
    trainable = trainable_parameters(module)
    everything = [name for name, _ in module.named_parameters()]
    if isinstance(groups, str):
        if groups == "layer":
            return _layer_groups(trainable)
        if groups == "parameter":
            return OrderedDict((name, [name]) for name in trainable)
        raise ValueError(
            f"groups must be 'layer', 'parameter', a list or a dict of layer/parameter "
            f"names; got {groups!r}")
    if isinstance(groups, dict):
        spec = list(groups.items())
    else:
        spec = [(name, [name]) for name in groups]
    if not spec:
        raise ValueError("groups is empty: name at least one layer or parameter")
    layers = sorted(set(_layer_groups(trainable)))
    resolved = OrderedDict()
    for group, members in spec:
        if group in ("network", "softmax") or "__" in str(group):
            raise ValueError(f"group name {group!r} is reserved or contains '__'")
        if isinstance(members, str):
            members = [members]
        names = []
        for member in members:
            # a name whose parameters are all frozen is taken as named: gradients can be
            # taken with respect to frozen weights (GradNorm's last layer)
            found = _members(trainable, member) or _members(everything, member)
            if not found:
                raise ValueError(
                    f"unknown layer or parameter {member!r}; layers with trainable "
                    f"parameters: {layers}")
            names.extend(p for p in found if p not in names)
        resolved[str(group)] = names
    return resolved


def gradient_parameters(module, groups):
    """The parameters whose per-sample gradients are computed, in module order: the
    trainable ones (:func:`trainable_parameters`) and any frozen one that ``groups``
    (from :func:`resolve_groups`) names."""
    named = {name for members in groups.values() for name in members}
    trainable = set(trainable_parameters(module))
    return [name for name, _ in module.named_parameters()
            if name in trainable or name in named]


def _owning_unit(module, name):
    """The outermost module above parameter ``name`` whose rule takes its children's
    weights too (nn.MultiheadAttention and its out_proj), or None."""
    parts = name.split(".")
    for k in range(len(parts) - 1):
        prefix = ".".join(parts[:k])
        rule = rule_for(module.get_submodule(prefix))
        if rule is not None and rule.owns_children:
            return prefix
    return None


def parameter_units(module, parameters):
    """Parameter name -> (its unit, its name there): the module whose rule computes its
    per-sample gradient, its layer or a unit above it that owns its children's weights."""
    units = {}
    for name in parameters:
        unit = _owning_unit(module, name)
        unit = name.rpartition(".")[0] if unit is None else unit
        units[name] = (unit, name[len(unit) + 1:] if unit else name)
    return units


def _broadcast_shaped(layer, param):
    """A weight of a module whose children hold weights, with a leading dimension of 1
    (a ViT's class token, its position embedding): a candidate for the per-sample
    gradient of a copy with one row per sample (checked by the probe)."""
    weight = getattr(layer, param, None)
    return (isinstance(weight, torch.Tensor) and weight.dim() >= 2 and weight.shape[0] == 1
            and any(True for c in layer.children() for _ in c.parameters()))


def _global_forward_hooks():
    from torch.nn.modules import module as torch_module
    return any(getattr(torch_module, name, None) for name in
               ("_global_forward_hooks", "_global_forward_pre_hooks"))


def layer_layout(module, parameters, units):
    """({layer name: rule}, [broadcast parameter names]) when every parameter belongs to
    a layer with a rule for it (:func:`skgradunc._layers.choose_rule`: the registered
    rule exact for that instance, else the layer-local fallback, for a layer whose own
    weights are all it holds) and held by that layer alone: their per-sample gradients
    come from the layer's input and output gradient. None otherwise (tied weights, a
    global forward hook; the whole-network strategies handle them). A weight also used
    outside its layer's call, or a layer called by keyword or with several inputs, shows
    in the autograd graph of each chunk's forward (the per-layer strategy's check)."""
    if _global_forward_hooks():
        return None   # they may replace any layer's output
    owners = {}
    for _, sub in module.named_modules(remove_duplicate=False):
        for p in sub.parameters(recurse=False):
            owners[id(p)] = owners.get(id(p), 0) + 1
    wanted = set(parameters)
    if any(owners[id(p)] > 1 for name, p in module.named_parameters() if name in wanted):
        return None
    names = {}
    for name in parameters:
        unit, param = units[name]
        names.setdefault(unit, []).append(param)
    layers, broadcast = {}, []
    for layer_name, params in names.items():
        layer = module.get_submodule(layer_name)
        rule = choose_rule(layer, params)
        if rule is not None:
            layers[layer_name] = rule
        elif all(_broadcast_shaped(layer, param) for param in params):
            prefix = f"{layer_name}." if layer_name else ""
            broadcast += [prefix + param for param in params]
        else:
            return None
    return layers, broadcast
