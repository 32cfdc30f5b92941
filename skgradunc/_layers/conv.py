"""nn.Conv1d and nn.Conv2d. With one group and zero padding: per output position, the
outer product of the output gradient and the input window; stride-1 convolutions with
enough channels by kernel offsets on shifted views of the input instead of copying
windows. Grouped (depthwise) ones and other padding modes: by folding the samples into
the groups (:mod:`.conv_folded`)."""

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import LayerRule, register_rule
from .conv_folded import conv_gradients, folded_bytes, same_padding
from .products import position_gradient, product_bytes, product_form

# Stride-1 convolutions with at least this many input channels get their weight gradient
# from one product per kernel offset on shifted views of the padded input, instead of
# copying the input windows (paper CNN, conv2 at chunk 256: window copy 6.2 ms of 9 ms).
# With fewer channels the per-offset products are too small (conv1: 3.6 ms vs 0.8 ms).
SHIFTED_MIN_CHANNELS = 8


def _conv_geometry(layer):
    """Kernel size, stride, dilation and padding as for a Conv2d (a Conv1d is a Conv2d
    of height 1)."""
    if isinstance(layer, nn.Conv1d):
        padding = layer.padding if isinstance(layer.padding, str) else (0, layer.padding[0])
        return ((1, layer.kernel_size[0]), (1, layer.stride[0]), (1, layer.dilation[0]),
                padding)
    return layer.kernel_size, layer.stride, layer.dilation, layer.padding


def _conv_padding(x, kernel_size, dilation, padding):
    """Input padded as the convolution pads it, so windows can be taken unpadded."""
    if padding == "valid":
        return x
    if padding == "same":
        return F.pad(x, same_padding(kernel_size, dilation))
    ph, pw = padding
    return F.pad(x, [pw, pw, ph, ph])


def _padded_input(layer, x):
    """The input as 4-D (a Conv1d's gets height 1), padded as the convolution pads it,
    with the kernel size, stride and dilation as for a Conv2d."""
    kernel_size, stride, dilation, padding = _conv_geometry(layer)
    if isinstance(layer, nn.Conv1d):
        x = x.unsqueeze(2)
    return _conv_padding(x, kernel_size, dilation, padding), kernel_size, stride, dilation


def _conv_windows(layer, x):
    """(n, C*kh*kw, L) input patches, the layout of the weight's gradient."""
    x, kernel_size, stride, dilation = _padded_input(layer, x)
    if dilation != (1, 1):
        return F.unfold(x, kernel_size, dilation=dilation, stride=stride)
    (kh, kw), (sh, sw) = kernel_size, stride
    windows = x.unfold(2, kh, sh).unfold(3, kw, sw)      # strided view (n, C, Ho, Wo, kh, kw)
    n, c, ho, wo = windows.shape[:4]
    # one copy, in the order bmm wants (measured faster than F.unfold's im2col on CPU)
    return windows.permute(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)


def _shifted_conv_gradient(layer, x, b):
    """Per-sample weight gradient (n, kh*kw*C*O, in an order of its own) of a stride-1,
    undilated convolution, without the input windows: for kernel offset (i, j) it is
    x_padded shifted by (i, j) @ grad^T. Flattening the padded input row by row makes
    every shift a contiguous slice; the grad is padded with zero columns to the padded
    width so that positions wrapping into the next row contribute nothing."""
    x, kernel_size, _, _ = _padded_input(layer, x)
    n, c, hp, wp = x.shape
    (kh, kw), out = kernel_size, b.shape[1]
    ho, wo = hp - kh + 1, wp - kw + 1
    span = ho * wp
    flat = F.pad(x.reshape(n, c, hp * wp), [0, kw - 1])
    grad = F.pad(b.reshape(n, out, ho, wo), [0, wp - wo]).reshape(n, out, span)
    grad_t = grad.transpose(1, 2)                                          # (n, span, O)
    result = x.new_empty(kh * kw, n, c, out)
    for i in range(kh):
        for j in range(kw):
            shift = i * wp + j
            torch.bmm(flat[:, :, shift:shift + span], grad_t, out=result[i * kw + j])
    return result.transpose(0, 1).reshape(n, -1)


def _shiftable(layer, grad_out):
    """Whether :func:`_shifted_conv_gradient` applies and pays: stride 1, no dilation,
    enough input channels, and output rows long enough that the zero columns it adds
    (kernel width - 1 a row) waste at most a quarter of its products."""
    kernel_size, stride, dilation, _ = _conv_geometry(layer)
    return (stride == (1, 1) and dilation == (1, 1)
            and layer.in_channels >= SHIFTED_MIN_CHANNELS
            and 4 * (kernel_size[1] - 1) <= grad_out.shape[-1])


@register_rule(nn.Conv1d, nn.Conv2d, torch_only=True)
class ConvRule(LayerRule):
    def folded(self, layer):
        """Whether the layer's configuration is one the products do not cover."""
        return layer.groups != 1 or layer.padding_mode != "zeros"

    def shape(self, layer, x, grad_out):
        """(r output positions, a output channels, b = C * kernel elements)."""
        a = grad_out.shape[1]
        return grad_out[0].numel() // a, a, layer.weight[0].numel()

    def form(self, layer, x, grad_out):
        if self.folded(layer):
            return "folded"
        return product_form(*self.shape(layer, x, grad_out),
                            shiftable=_shiftable(layer, grad_out))

    def gradients(self, layer, x, grad_out, tensors):
        form = self.form(layer, x, grad_out)
        if form == "folded":
            return conv_gradients(layer, x, grad_out)
        n = x.shape[0]
        b = grad_out.reshape(n, grad_out.shape[1], -1)                    # (n, O, L)
        if form == "shifted":
            grads = {"weight": _shifted_conv_gradient(layer, x, b)}
        else:
            windows = _conv_windows(layer, x)                             # (n, K, L)
            # materialised as windows @ b^T, the weight gradient transposed (n, K, O):
            # statistics do not depend on element order, and this product runs ~1.9x
            # faster than b @ windows^T on the CPU (conv2 of the paper CNN)
            grads = {"weight": position_gradient(form, b.transpose(1, 2),
                                                 windows.transpose(1, 2))}
        if layer.bias is not None:
            grads["bias"] = b.sum(dim=2)
        return grads

    def bytes_per_sample(self, layer, x, grad_out):
        form = self.form(layer, x, grad_out)
        if form == "folded":
            return folded_bytes(layer, x, grad_out)
        (r, a, b), size = self.shape(layer, x, grad_out), grad_out.element_size()
        if form == "shifted":  # no windows: the padded input, the grad
            return size * 2 * (x[0].numel() + grad_out[0].numel()) + size * 3 * a * b
        return product_bytes(form, r, a, b, size)
