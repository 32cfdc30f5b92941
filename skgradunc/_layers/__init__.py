"""Per-layer rules: one per layer type, one file per layer family, registered by exact
type (the pattern of Opacus's ``register_grad_sampler``).

A rule (:class:`LayerRule`) owns everything about its layer type: whether it is exact for
an instance in its configuration (``applies``), the per-sample gradients of the layer's
parameters from the layer's input and the loss gradient at its output (``gradients``, in
a form of :mod:`._forms`: outer product, low rank, rows, or dense), and the bytes one
sample's gradients take while summarised (``bytes_per_sample``). Families:
:mod:`.linear` and :mod:`.conv` (sums of outer products, :mod:`.products`),
:mod:`.conv_folded` (grouped convolutions, Conv3d, transposed convolutions), :mod:`.norm`,
:mod:`.embedding`, :mod:`.activation`, :mod:`.attention`. A layer without one gets the
layer-local fallback of :mod:`.local` (:func:`choose_rule`).

:func:`rule_for` dispatches and cannot misroute a subclass: a layer gets the rule of its
own type, or of a registered base type whose forward (and the methods the forward calls)
it inherits unchanged; none when a hook may change its input, weights or output, a
parametrisation computes its weights, or a forward method was replaced on the instance or
on the type.
"""

from . import activation, attention, conv, conv_folded, embedding, linear, norm
from ._calls import BLOCK_BYTES, Call, block_budget, sample_block
from ._forms import LowRank, Outer, Rows, dense, summarize_gradient
from ._registry import LayerRule, layer_tensors, register_rule, registered_rule, rule_for
from ._uses import UnsupportedNetworkError, gradient_uses
from .local import LOCAL

__all__ = ["LayerRule", "register_rule", "rule_for", "registered_rule", "choose_rule", "LOCAL",
           "layer_tensors", "Outer", "LowRank", "Rows", "dense", "summarize_gradient", "Call",
           "BLOCK_BYTES", "block_budget", "sample_block", "UnsupportedNetworkError",
           "gradient_uses"]

# importing each family registered its rules
FAMILIES = (linear, conv, conv_folded, norm, embedding, activation, attention)


def choose_rule(layer, names):
    """The rule for the per-sample gradients of ``names``, the layer's own trainable
    parameters: its registered rule when that is exact for the instance and covers them,
    else the layer-local fallback (:mod:`.local`) where it applies, else None."""
    rule = rule_for(layer)
    if rule is not None and set(names) <= set(rule.parameters(layer)):
        return rule
    return LOCAL if LOCAL.applies(layer) else None
