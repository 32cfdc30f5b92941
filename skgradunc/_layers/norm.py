"""Normalisations with an affine output, y = x_hat * weight + bias elementwise, so the
per-sample gradients are sums over positions of grad * x_hat and grad: nn.BatchNorm1d/2d/3d
(eval mode, running statistics), nn.LayerNorm, nn.GroupNorm and nn.InstanceNorm1d/2d/3d
(per-sample statistics)."""

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


@register_rule(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, torch_only=True)
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


@register_rule(nn.GroupNorm, torch_only=True)
class GroupNormRule(_AffineNormRule):
    """Per-sample statistics over each group of channels (and all positions)."""

    def applies(self, layer):
        return layer.affine

    def normalised(self, layer, x, tensors):
        n, groups = x.shape[0], layer.num_groups
        grouped = x.reshape(n, groups, -1)
        mean = grouped.mean(dim=2, keepdim=True)
        var = grouped.var(dim=2, unbiased=False, keepdim=True)
        return ((grouped - mean) / torch.sqrt(var + layer.eps)).reshape(x.shape)

    def summed_dims(self, layer, grad_out):
        return tuple(range(2, grad_out.dim()))


@register_rule(nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, torch_only=True)
class InstanceNormRule(_AffineNormRule):
    """Per-sample, per-channel statistics over the positions (without running
    statistics: with them, eval mode normalises as BatchNorm does, which the fallback
    takes)."""

    def applies(self, layer):
        return layer.affine and not layer.track_running_stats

    def normalised(self, layer, x, tensors):
        dims = tuple(range(2, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + layer.eps)

    def summed_dims(self, layer, grad_out):
        return tuple(range(2, grad_out.dim()))
