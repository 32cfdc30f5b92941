"""The layer-local fallback: exact per-sample gradients for a layer without a rule
(GroupNorm, a depthwise convolution, PReLU, a user's own layer), from its own recorded
input and output gradient: ``torch.func.vmap`` over the vjp of that layer's forward, one
sample at a time. The layer's forward runs again per sample, batched by vmap, so one such
layer costs that layer, not a whole-network vmap; its per-sample gradients are
materialised, block by block of samples like any layer's.

Exact for whatever the layer's forward computes (a subclass with its own forward
included) as long as a sample's output depends on that sample alone (eval mode) and the
layer is called with one tensor: calls with other arguments are not recorded, so the
engine's check of each weight's uses sends the network to an exact whole-network path.
"""

import torch
from torch.func import functional_call, vjp, vmap

from ._registry import LayerRule, registered_rule, unaltered
from ._uses import gradient_uses

__all__ = ["LocalRule", "LOCAL"]


class LocalRule(LayerRule):
    def applies(self, layer):
        return (bool(self.parameters(layer))
                and unaltered(layer)
                and not isinstance(layer, torch.jit.ScriptModule)
                and (registered_rule(layer) is None or registered_rule(layer).local_ok(layer))
                # its children hold no weights: theirs would be used inside its call
                and not any(True for c in layer.children() for _ in c.parameters()))

    def parameters(self, layer):
        return tuple(name for name, _ in layer.named_parameters(recurse=False))

    def gradients(self, layer, x, grad_out, tensors):
        own = {name: tensors[name].detach() for name in self.parameters(layer)}
        rest = {name: t for name, t in tensors.items() if name not in own}

        def one_sample(x_i, g_i):
            def forward(params):
                return functional_call(layer, (params, rest), (x_i[None],))
            _, pullback = vjp(forward, own)
            return pullback(g_i[None])[0]

        with torch.enable_grad():
            return vmap(one_sample)(x, grad_out)

    def uses_per_call(self, layer, call, tensors):
        """The edges into each of its weights of one call, counted once on the layer alone,
        re-run on the first sample of the call's input: whatever its forward does, it may
        use a weight more than once."""
        own = {name: tensors[name] for name in self.parameters(layer)}
        rest = {name: t for name, t in tensors.items() if name not in own}
        with torch.enable_grad():
            leaves = {k: v.detach().requires_grad_() for k, v in own.items()}
            out = functional_call(layer, (leaves, rest), (call.inputs[0][:1],))
        return gradient_uses(out, leaves, layer) if isinstance(out, torch.Tensor) else {}

    def bytes_per_sample(self, layer, x, grad_out):
        # the materialised gradients and the statistics' temporaries, and the layer's
        # forward and backward for one sample (its input, output and their gradients)
        size = grad_out.element_size()
        weights = sum(p.numel() for p in layer.parameters(recurse=False))
        return size * (3 * weights + 4 * (x[0].numel() + grad_out[0].numel()))


LOCAL = LocalRule()
