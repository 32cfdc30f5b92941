"""The registry of per-layer rules: one rule per layer type, registered by exact type."""

import torch
from torch import nn
from torch.nn.utils import parametrize

from ._calls import Call, needed_while, summaries_in_blocks, summed

__all__ = ["LayerRule", "register_rule", "rule_for", "registered_rule", "layer_tensors",
           "unaltered"]

# the methods a layer's call goes through: a subclass or an instance that replaces one
# computes something else than the registered type's forward
FORWARD_METHODS = ("__call__", "_call_impl", "forward", "_conv_forward", "_check_input_dim",
                   "_output_padding")

_RULES = {}       # layer type -> rule
_FORWARDS = {}    # layer type -> {method name: function} when it was registered


class LayerRule:
    """How the per-sample gradients of one layer type's parameters are computed.

    Subclass it, implement :meth:`gradients` (and :meth:`applies` where only some
    configurations are covered, :meth:`bytes_per_sample` for the memory bound), and
    register it for the layer types it is exact for with :func:`register_rule`.

    Examples
    --------
    A rule for a layer of your own, ``y = x * sigmoid(w) + b`` per feature: each
    parameter's per-sample gradient, one row a sample, from the layer's input and
    output gradient.

    >>> import torch
    >>> from skgradunc.layer_rules import LayerRule, check_layer_rule, register_layer_rule
    >>> class SoftGate(torch.nn.Module):
    ...     def __init__(self, n):
    ...         super().__init__()
    ...         self.weight = torch.nn.Parameter(torch.zeros(n))
    ...         self.bias = torch.nn.Parameter(torch.zeros(n))
    ...     def forward(self, x):
    ...         return x * torch.sigmoid(self.weight) + self.bias
    >>> @register_layer_rule(SoftGate)
    ... class SoftGateRule(LayerRule):
    ...     def gradients(self, layer, x, grad_out, tensors):  # tensors: on the device
    ...         gate = torch.sigmoid(tensors["weight"])
    ...         return {"weight": grad_out * x * gate * (1 - gate), "bias": grad_out}
    >>> check_layer_rule(SoftGate(6), torch.randn(5, 6))   # AssertionError if it is wrong
    """

    owns_children = False    # True: a unit of the layer's weights and its children's
    copies_outputs = False   # True: the rest of the network gets copies of its outputs

    def applies(self, layer):
        """Whether the rule is exact for this instance's configuration.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer instance, of a type the rule is registered for.

        Returns
        -------
        bool
            True (the default) when the rule covers the layer; False sends it to the
            layer-local fallback.
        """
        return True

    def parameters(self, layer):
        """Names of the layer's own parameters the rule computes gradients of.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer instance, of a type the rule is registered for.

        Returns
        -------
        tuple of str
            The parameter names; by default ``("weight", "bias")``.
        """
        return ("weight", "bias")

    def local_ok(self, layer):
        """Whether the layer-local fallback may take a layer of this type where the rule
        does not apply (not when its forward changes the layer's state).

        Parameters
        ----------
        layer : torch.nn.Module
            The layer instance, of a type the rule is registered for.

        Returns
        -------
        bool
            True by default.
        """
        return True

    def gradients(self, layer, x, grad_out, tensors):
        """{parameter name: per-sample gradient} for one call of ``layer`` on the batch
        ``x`` (its one input) whose output got the gradient ``grad_out``; each gradient
        (n, ...) in any element order, or a factored form of
        :mod:`skgradunc._layers._forms`. A parameter that is None is left out.
        ``tensors``: the layer's parameters and buffers by name (its own and its
        children's), on the device of the computation: use them, not the layer's.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer instance, of a type the rule is registered for.
        x : torch.Tensor of shape (n_samples, ...)
            The layer's input in this call, one sample a row.
        grad_out : torch.Tensor of shape (n_samples, ...)
            The gradient of the loss with respect to the layer's output in this call.
        tensors : dict of str to torch.Tensor
            The layer's parameters and buffers by name (its own and its children's),
            on the device of the computation.

        Returns
        -------
        dict of str to torch.Tensor or factored gradient
            Per parameter name, the per-sample gradients: a tensor (n_samples, ...)
            or an ``Outer``, ``LowRank`` or ``Rows`` of :mod:`skgradunc._layers._forms`.
        """
        raise NotImplementedError

    def record(self, layer, args, kwargs, output, private=False):
        """The :class:`~skgradunc._layers._calls.Call` the engine keeps of one call of
        ``layer`` (a forward hook's arguments), or None when this rule cannot compute
        that call's gradients; then the engine's check of each weight's uses sends the
        network to an exact whole-network strategy.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer instance, of a type the rule is registered for.
        args : tuple
            The call's positional arguments.
        kwargs : dict
            The call's keyword arguments.
        output : object
            What the call returned.
        private : bool, default=False
            Save a copy of the inputs: an in-place operation of the network overwrites
            them.

        Returns
        -------
        Call or None
            By default, for one tensor in and one tensor out: that input, detached,
            and that output.
        """
        if (len(args) != 1 or kwargs or not isinstance(args[0], torch.Tensor)
                or not isinstance(output, torch.Tensor)):
            return None
        saved = args[0].detach()
        return Call((saved.clone() if private else saved,), (output,))

    def summaries(self, layer, calls, grads, tensors, budget, needed=None):
        """{parameter name: (n, 9) summary} of the per-sample gradients of the layer's
        parameters, summed over its calls, in blocks of samples of about ``budget``
        bytes; by default from :meth:`gradients` of each call's input and output
        gradient.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer instance, of a type the rule is registered for.
        calls : list of Call
            The layer's recorded calls in one forward (at least one).
        grads : list of tuple of torch.Tensor
            The gradient of the loss with respect to each call's outputs.
        tensors : dict of str to torch.Tensor
            The layer's parameters and buffers by name, on the device.
        budget : int or None
            Bytes of per-sample gradients to hold at once (None: no bound).
        needed : frozenset or None, default=None
            The summary columns the statistics asked for read (None: all).

        Returns
        -------
        dict of str to torch.Tensor
            Per parameter, the summaries of :mod:`skgradunc.statistics`.
        """
        records = [(call.inputs[0], g[0]) for call, g in zip(calls, grads)]
        with needed_while(needed):   # the forms a rule chooses may depend on it
            per_sample = max(self.bytes_per_sample(layer, x, g) for x, g in records)
        return summaries_in_blocks(
            len(records[0][0]), per_sample, budget,
            lambda rows: summed(self.gradients(layer, x[rows], g[rows], tensors)
                                for x, g in records), needed)

    def uses_per_call(self, layer, call, tensors):
        """{parameter name: how often one call of the layer takes its gradient}; by
        default {} (once each: a layer that applies each weight once, as the built-in
        rules' layers). The engine checks the network's autograd graph against it.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer instance, of a type the rule is registered for.
        call : Call
            One of its recorded calls.
        tensors : dict of str to torch.Tensor
            The layer's parameters and buffers by name, on the device.

        Returns
        -------
        dict of str to int
            The counts that differ from one.
        """
        return {}

    def bytes_per_sample(self, layer, x, grad_out):
        """Bytes one sample's gradients occupy while summarised (gradient, inputs,
        statistics' temporaries): samples are processed in blocks that fit the bound.

        Parameters
        ----------
        layer : torch.nn.Module
            The layer instance, of a type the rule is registered for.
        x : torch.Tensor of shape (n_samples, ...)
            The layer's input in this call.
        grad_out : torch.Tensor of shape (n_samples, ...)
            The gradient of the loss with respect to the layer's output.

        Returns
        -------
        int
            Bytes per sample; by default three times the element size of ``grad_out``
            per element of the layer's own parameters.
        """
        size = grad_out.element_size()
        return size * 3 * sum(p.numel() for p in layer.parameters(recurse=False))


def unaltered(module):
    """No forward hooks or pre-hooks (they may change its input, weights or output) and no
    parametrisation (which computes its weights) on this module."""
    return not (module._forward_hooks or module._forward_pre_hooks
                or parametrize.is_parametrized(module))


def layer_tensors(layer):
    """The ``tensors`` argument of :meth:`LayerRule.gradients` from the layer itself: its
    parameters and buffers (its children's included) by their names in the layer."""
    return dict(layer.named_parameters()) | dict(layer.named_buffers())


# types no rule can be for: the base of every layer, and containers, which hold no
# weights of their own and whose forward is their children's
_NOT_LAYERS = (nn.Module, nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList,
               nn.ParameterDict)


def _check_layer_types(layer_types):
    if not layer_types:
        raise TypeError("name at least one layer type (a torch.nn.Module subclass)")
    for kind in layer_types:
        if not (isinstance(kind, type) and issubclass(kind, nn.Module)):
            raise TypeError(f"layer types must be torch.nn.Module subclasses, got {kind!r}")
        if kind in _NOT_LAYERS:
            raise TypeError(f"{kind.__module__}.{kind.__name__} is not a layer type: rules "
                            "are registered for the exact types of layers that hold weights")
        if kind.forward is nn.Module.forward:
            raise TypeError(f"{kind.__name__} has no forward of its own: rules are "
                            "registered for the layer types that compute something")


def _rule_instance(rule_class):
    if not (isinstance(rule_class, type) and issubclass(rule_class, LayerRule)):
        raise TypeError(f"the decorated class must subclass LayerRule, got {rule_class!r}")
    if (rule_class.summaries is LayerRule.summaries
            and rule_class.gradients is LayerRule.gradients):
        raise TypeError(f"{rule_class.__name__} does not implement gradients(layer, x, "
                        "grad_out, tensors)")
    try:
        return rule_class()
    except TypeError as exc:
        raise TypeError(f"{rule_class.__name__}() must take no arguments: {exc}") from exc


def register_rule(*layer_types, torch_only=False, replace=False):
    """Class decorator: register an instance of the decorated :class:`LayerRule` for
    each of ``layer_types`` (exact types). The types' forward methods are recorded now; a
    layer whose type or instance has other ones later gets no rule. ``torch_only``: a
    type whose forward methods are not torch's own (patched before this import) gets
    none either. A type that has a rule already is refused unless ``replace``, and so
    are a decorated class that is no :class:`LayerRule` and types that are not layers,
    before anything is registered."""
    _check_layer_types(layer_types)

    def decorator(rule_class):
        rule = _rule_instance(rule_class)
        taken = [kind for kind in layer_types if kind in _RULES]
        if taken and not replace:
            held = ", ".join(f"{kind.__name__} ({type(_RULES[kind]).__name__})"
                             for kind in taken)
            raise ValueError(f"{held} already registered: registering "
                             f"{rule_class.__name__} would replace the rule silently; "
                             "pass replace=True to replace it")
        for kind in layer_types:
            methods = {m: getattr(kind, m) for m in FORWARD_METHODS if hasattr(kind, m)}
            if torch_only and not all(getattr(f, "__module__", "").startswith(
                    "torch.nn.modules.") for f in methods.values()):
                continue
            _RULES[kind], _FORWARDS[kind] = rule, methods
        return rule_class
    return decorator


def registered_rule(layer):
    """The rule registered for the layer's type or a base type, with no check of the
    instance (for a layer :func:`rule_for` already accepted)."""
    return next((_RULES[k] for k in type(layer).__mro__ if k in _RULES), None)


def _rule_type(layer):
    """The registered type whose rule is exact for ``layer``: its own type, or a base type
    whose forward (and what the forward calls) it inherits unchanged; None otherwise, and
    for a layer whose hooks may change its input, weight or output, or whose parameters
    are computed by a parametrisation."""
    kind = next((k for k in type(layer).__mro__ if k in _RULES), None)
    if kind is None:
        return None
    if any(getattr(type(layer), m, None) is not f for m, f in _FORWARDS[kind].items()):
        return None
    if any(m in vars(layer) for m in FORWARD_METHODS):
        return None   # replaced on the instance (as accelerate's hooks do)
    if not unaltered(layer):
        return None
    return kind


def rule_for(layer):
    """The rule exact for this layer instance, or None."""
    kind = _rule_type(layer)
    if kind is None:
        return None
    rule = _RULES[kind]
    return rule if rule.applies(layer) else None
