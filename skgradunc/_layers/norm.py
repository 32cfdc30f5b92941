"""nn.BatchNorm1d/2d (eval mode, running statistics) and nn.LayerNorm: y = x_hat * weight
+ bias elementwise, so the per-sample gradients are sums over positions of grad * x_hat
and grad."""

import torch
from torch import nn

from ._registry import LayerRule, register_rule


class _AffineNormRule(LayerRule):
    def normalised(self, layer, x, tensors):
        raise NotImplementedError

    def summed_dims(self, layer, grad_out):
        raise NotImplementedError

    def gradients(self, layer, x, grad_out, tensors):
        dims = self.summed_dims(layer, grad_out)
        product = grad_out * self.normalised(layer, x, tensors)
        grads = {"weight": product.sum(dim=dims) if dims else product}
        if layer.bias is not None:
            grads["bias"] = grad_out.sum(dim=dims) if dims else grad_out
        return grads

    def bytes_per_sample(self, layer, x, grad_out):
        return grad_out.element_size() * 3 * x[0].numel()


@register_rule(nn.BatchNorm1d, nn.BatchNorm2d, torch_only=True)
class BatchNormRule(_AffineNormRule):
    def applies(self, layer):
        # eval mode with running statistics: samples do not interact
        return layer.affine and layer.track_running_stats and layer.running_mean is not None

    def normalised(self, layer, x, tensors):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return ((x - tensors["running_mean"].reshape(shape))
                / torch.sqrt(tensors["running_var"].reshape(shape) + layer.eps))

    def summed_dims(self, layer, grad_out):
        return tuple(range(2, grad_out.dim()))


@register_rule(nn.LayerNorm, torch_only=True)
class LayerNormRule(_AffineNormRule):
    def applies(self, layer):
        return layer.elementwise_affine

    def normalised(self, layer, x, tensors):
        dims = tuple(range(-len(layer.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + layer.eps)

    def summed_dims(self, layer, grad_out):
        return tuple(range(1, grad_out.dim() - len(layer.normalized_shape)))
