"""nn.PReLU: y = max(0, x) + weight * min(0, x), one weight or one per channel (dim 1), so
the per-sample gradient is the sum of grad * min(0, x) over what shares a weight."""

from torch import nn

from ._registry import LayerRule, register_rule


@register_rule(nn.PReLU, torch_only=True)
class PReLURule(LayerRule):
    def parameters(self, layer):
        return ("weight",)

    def gradients(self, layer, x, grad_out, tensors):
        product = grad_out * x.clamp(max=0)
        n = x.shape[0]
        if layer.num_parameters == 1 or x.dim() == 1:
            return {"weight": product.reshape(n, -1).sum(dim=1, keepdim=True)}
        dims = tuple(d for d in range(x.dim()) if d not in (0, 1))
        return {"weight": product.sum(dim=dims) if dims else product}

    def bytes_per_sample(self, layer, x, grad_out):
        return grad_out.element_size() * 2 * x[0].numel()
