"""nn.Linear: per position (a sequence's tokens), the outer product of the output
gradient and the input."""

from torch import nn

from ._registry import LayerRule, register_rule
from .products import position_gradient, product_bytes, product_form


@register_rule(nn.Linear, torch_only=True)
class LinearRule(LayerRule):
    def shape(self, layer, x, grad_out):
        """(r positions, a outputs, b inputs)."""
        a = grad_out.shape[-1]
        return grad_out[0].numel() // a, a, x.shape[-1]

    def form(self, layer, x, grad_out):
        return product_form(*self.shape(layer, x, grad_out))

    def gradients(self, layer, x, grad_out, tensors):
        n = x.shape[0]
        a = x.reshape(n, -1, x.shape[-1])                                  # (n, T, I)
        b = grad_out.reshape(n, -1, grad_out.shape[-1])                   # (n, T, O)
        grads = {"weight": position_gradient(self.form(layer, x, grad_out), b, a)}
        if layer.bias is not None:
            grads["bias"] = b.sum(dim=1)
        return grads

    def bytes_per_sample(self, layer, x, grad_out):
        return product_bytes(self.form(layer, x, grad_out), *self.shape(layer, x, grad_out),
                             grad_out.element_size())
