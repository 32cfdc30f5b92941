"""Per-sample weight gradients of single layers, from the layer's input and the loss
gradient at its output, in the cheapest exact form, and their summaries.

A Linear or convolution applied at r positions has the per-sample gradient
sum_s grad_s (x) input_s: kept as an outer product (r = 1), a sum of a few outer
products (small r) or materialised; an Embedding's gradient as the rows it touches;
BatchNorm/LayerNorm affine parameters as sums over positions. Layers are summarised
block by block of samples, so memory follows one layer, not the network.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .statistics import summarize, summarize_low_rank, summarize_outer, with_zeros

__all__ = ["supported_layer", "per_sample_layer_gradient", "summarize_gradient",
           "layer_summaries", "block_budget", "sample_block", "Outer", "LowRank", "Rows"]


# The per-layer rules below are exact for these types' own forward. Their forward and
# what it calls are kept as they are at import, so that a subclass that computes something
# else (a pruning mask, a QAT layer's fake quantisation, its own padding) is recognised.
_RULE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding, nn.BatchNorm1d, nn.BatchNorm2d,
               nn.LayerNorm)
_FORWARD_METHODS = ("__call__", "_call_impl", "forward", "_conv_forward", "_check_input_dim")
_ORIGINAL_FORWARD = {kind: {m: getattr(kind, m) for m in _FORWARD_METHODS if hasattr(kind, m)}
                     for kind in _RULE_TYPES}
# a type whose forward was patched before this module was imported has no rule
_ORIGINAL_FORWARD = {kind: methods for kind, methods in _ORIGINAL_FORWARD.items()
                     if all(getattr(f, "__module__", "").startswith("torch.nn.modules.")
                            for f in methods.values())}


def _rule_type(layer):
    """The type whose rule is exact for ``layer``: its own type, or a base type whose
    forward (and what the forward calls) it inherits unchanged; None otherwise, and for a
    layer whose hooks may change its input, weight or output, or whose parameters are
    computed by a parametrisation."""
    base = next((kind for kind in type(layer).__mro__ if kind in _ORIGINAL_FORWARD), None)
    if base is None:
        return None
    if any(getattr(type(layer), m) is not f for m, f in _ORIGINAL_FORWARD[base].items()):
        return None
    if any(m in vars(layer) for m in _FORWARD_METHODS):
        return None   # replaced on the instance (as accelerate's hooks do)
    if layer._forward_hooks or layer._forward_pre_hooks or parametrize.is_parametrized(layer):
        return None
    return base


def supported_layer(layer):
    """Whether a per-layer rule is exact for this layer instance (see :func:`_rule_type`)
    in its configuration."""
    kind = _rule_type(layer)
    if kind is None:
        return False
    if kind in (nn.Conv1d, nn.Conv2d):
        return layer.groups == 1 and layer.padding_mode == "zeros"
    if kind is nn.Embedding:
        # max_norm renormalises the weight in the forward; scale_grad_by_freq couples the
        # samples of a batch: both go through vmap
        return layer.max_norm is None and not layer.scale_grad_by_freq
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        # eval mode with running statistics: samples do not interact
        return layer.affine and layer.track_running_stats and layer.running_mean is not None
    if kind is nn.LayerNorm:
        return layer.elementwise_affine
    return True


class Outer:
    """A per-sample gradient that is the outer product of two factors, kept factored:
    row i is u[i] (x) v[i], flattened (a dense layer's weight gradient)."""

    def __init__(self, u, v):
        self.u, self.v = u, v

    def dense(self):
        return torch.bmm(self.u[:, :, None], self.v[:, None, :])


class Rows:
    """A per-sample embedding gradient kept sparse: ``rows[i, s]`` is the gradient of
    row ``index[i, s]`` of the (num_embeddings, dim) weight, every other row is zero
    (``zeros`` elements a sample)."""

    def __init__(self, rows, index, num_embeddings):
        self.rows, self.index, self.num_embeddings = rows, index, num_embeddings
        self.zeros = (num_embeddings - rows.shape[1]) * rows.shape[2]

    def dense(self):
        n, _, dim = self.rows.shape
        full = self.rows.new_zeros(n, self.num_embeddings, dim)
        return full.scatter_add_(1, self.index[:, :, None].expand(-1, -1, dim), self.rows)


class LowRank:
    """A per-sample gradient that is a sum of a few outer products, kept factored:
    row i is sum_s u[i, s] (x) v[i, s] (u (n, r, a), v (n, r, b)), a layer with r
    positions per sample (a convolution's output positions, a sequence's tokens)."""

    def __init__(self, u, v):
        self.u, self.v = u, v

    def dense(self):
        """(n, b, a): the gradient transposed (measured faster as windows @ grad^T)."""
        return torch.bmm(self.v.transpose(1, 2), self.u)


# A layer with r positions per sample keeps its gradient factored (LowRank) when the
# r x r contractions that give its power sums, ~r^4 (a + b) multiply-adds, cost less than
# LOW_RANK_GAIN element-wise passes over the a*b gradient: on ResNet-18 with 32x32 inputs
# this is layer3 (2x2 positions); more positions are cheaper materialised.
LOW_RANK_GAIN = 4


def _product_shape(layer, x, grad_out):
    """(r, a, b): a Linear's or convolution's per-sample weight gradient is the sum over
    r positions of (a outputs) x (b inputs) outer products."""
    conv = not isinstance(layer, nn.Linear)
    a = grad_out.shape[1] if conv else grad_out.shape[-1]
    b = layer.weight[0].numel() if conv else x.shape[-1]
    return grad_out[0].numel() // a, a, b


def _shiftable(layer, grad_out):
    """Whether :func:`_shifted_conv_gradient` applies and pays: stride 1, no dilation,
    enough input channels, and output rows long enough that the zero columns it adds
    (kernel width - 1 a row) waste at most a quarter of its products."""
    kernel_size, stride, dilation, _ = _conv_geometry(layer)
    return (stride == (1, 1) and dilation == (1, 1)
            and layer.in_channels >= SHIFTED_MIN_CHANNELS
            and 4 * (kernel_size[1] - 1) <= grad_out.shape[-1])


def weight_gradient_form(layer, x, grad_out):
    """How a Linear's or convolution's per-sample weight gradient is computed, in the
    cheapest exact form: ``"outer"`` (one position: an outer product, never formed),
    ``"low_rank"`` (few positions: a sum of r outer products, power sums from r x r
    contractions), ``"shifted"`` (a stride-1 convolution, materialised by kernel offsets
    from shifted views of its input) or ``"dense"`` (materialised from the positions or
    the input windows). The computation and its memory estimate both follow it."""
    r, a, b = _product_shape(layer, x, grad_out)
    if r == 1:
        return "outer"
    if r ** 4 * (a + b) <= LOW_RANK_GAIN * a * b:
        return "low_rank"
    if not isinstance(layer, nn.Linear) and _shiftable(layer, grad_out):
        return "shifted"
    return "dense"


def _position_gradient(form, u, v):
    """Per-sample gradient sum_s u[:, s] (x) v[:, s] of a layer applied at r positions,
    in the given form (Outer, LowRank or dense)."""
    if form == "outer":
        return Outer(u[:, 0], v[:, 0])
    if form == "low_rank":
        return LowRank(u, v)
    return LowRank(u, v).dense()


def _dense(g):
    return g.dense() if isinstance(g, (Outer, LowRank, Rows)) else g


def _embedding_rows(layer, index, grad_out):
    """Per-sample gradient of an embedding's weight as :class:`Rows`: the output
    gradients of a sample's positions added up per distinct index (the padding index's
    row stays zero), in at most min(positions, num_embeddings) slots."""
    n, dim = index.shape[0], grad_out.shape[-1]
    index = index.reshape(n, -1)
    grad_out = grad_out.reshape(n, -1, dim)
    if layer.padding_idx is not None:
        grad_out = grad_out.masked_fill((index == layer.padding_idx)[:, :, None], 0)
    index, order = index.sort(dim=1)
    grad_out = grad_out.gather(1, order[:, :, None].expand(-1, -1, dim))
    slot = torch.zeros_like(index)
    slot[:, 1:] = (index[:, 1:] != index[:, :-1]).cumsum(dim=1)   # distinct index -> slot
    slots = min(index.shape[1], layer.num_embeddings)
    rows = grad_out.new_zeros(n, slots, dim).scatter_add_(
        1, slot[:, :, None].expand(-1, -1, dim), grad_out)
    # unused slots point at row 0 with a zero gradient: harmless when made dense
    values = torch.zeros(n, slots, dtype=index.dtype, device=index.device).scatter_(
        1, slot, index)
    return Rows(rows, values, layer.num_embeddings)


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
        pads = []
        for k, d in zip(reversed(kernel_size), reversed(dilation)):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)
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


# Stride-1 convolutions with at least this many input channels get their weight gradient
# from one product per kernel offset on shifted views of the padded input, instead of
# copying the input windows (paper CNN, conv2 at chunk 256: window copy 6.2 ms of 9 ms).
# With fewer channels the per-offset products are too small (conv1: 3.6 ms vs 0.8 ms).
SHIFTED_MIN_CHANNELS = 8


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


def _normalised_input(layer, x):
    """x-hat of a BatchNorm (running statistics) or LayerNorm (per-sample statistics)."""
    if isinstance(layer, nn.LayerNorm):
        dims = tuple(range(-len(layer.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + layer.eps)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return ((x - layer.running_mean.reshape(shape))
            / torch.sqrt(layer.running_var.reshape(shape) + layer.eps))


def per_sample_layer_gradient(layer, x, grad_out):
    """{"weight": ..., "bias": ...} per-sample gradients for one call of ``layer``.

    Each entry holds every element of the per-sample gradient, in an order chosen for
    speed (a convolution's weight gradient comes transposed); only order-free
    statistics are taken of them."""
    n = x.shape[0]
    if isinstance(layer, nn.Linear):
        a = x.reshape(n, -1, x.shape[-1])                                  # (n, T, I)
        b = grad_out.reshape(n, -1, grad_out.shape[-1])                   # (n, T, O)
        grads = {"weight": _position_gradient(weight_gradient_form(layer, x, grad_out), b, a)}
        bias = b.sum(dim=1)
    elif isinstance(layer, nn.Embedding):
        return {"weight": _embedding_rows(layer, x, grad_out)}
    elif isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        b = grad_out.reshape(n, grad_out.shape[1], -1)                    # (n, O, L)
        form = weight_gradient_form(layer, x, grad_out)
        if form == "shifted":
            grads = {"weight": _shifted_conv_gradient(layer, x, b)}
        else:
            windows = _conv_windows(layer, x)                             # (n, K, L)
            # materialised as windows @ b^T, the weight gradient transposed (n, K, O):
            # statistics do not depend on element order, and this product runs ~1.9x
            # faster than b @ windows^T on the CPU (conv2 of the paper CNN)
            grads = {"weight": _position_gradient(form, b.transpose(1, 2),
                                                  windows.transpose(1, 2))}
        bias = b.sum(dim=2)
    else:  # BatchNorm / LayerNorm: y = x_hat * weight + bias, elementwise
        if isinstance(layer, nn.LayerNorm):
            dims = tuple(range(1, grad_out.dim() - len(layer.normalized_shape)))
        else:
            dims = tuple(range(2, grad_out.dim()))
        product = grad_out * _normalised_input(layer, x)
        grads = {"weight": product.sum(dim=dims) if dims else product}
        bias = grad_out.sum(dim=dims) if dims else grad_out
    if layer.bias is not None:
        grads["bias"] = bias
    return grads


def summarize_gradient(g):
    if isinstance(g, Outer):
        return summarize_outer(g.u, g.v)
    if isinstance(g, LowRank):
        return summarize_low_rank(g.u, g.v, g.dense().flatten(1))
    if isinstance(g, Rows):
        return with_zeros(summarize(g.rows.flatten(1)), g.zeros)
    return summarize(g.reshape(g.shape[0], -1))


def bytes_per_sample(layer, x, grad_out):
    """Bytes one sample's per-layer gradient occupies while it is summarised: the
    materialised gradient, its inputs (a convolution's windows, or its padded input and
    output gradient on the shifted-view path) and the statistics' temporaries; factored
    gradients their factors (LowRank's float64 pair products)."""
    size = grad_out.element_size()
    if isinstance(layer, nn.Embedding):
        return size * 3 * min(x[0].numel(), layer.num_embeddings) * layer.embedding_dim
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        r, a, b = _product_shape(layer, x, grad_out)
        form = weight_gradient_form(layer, x, grad_out)
        inputs = size * r * (a + b)                                              # windows
        if form == "outer":
            return inputs
        if form == "low_rank":
            return inputs + size * (2 * a * b + 2 * r * r * (a + b))
        if form == "shifted":  # no windows: the padded input, the grad
            inputs = size * 2 * (x[0].numel() + grad_out[0].numel())
        return inputs + size * 3 * a * b
    return size * 3 * x[0].numel()


# Blocks of per-sample gradients are kept near this size (measured on 2 CPU cores): much
# larger ones pay page faults for fresh temporaries on every allocation (paper CNN: 5,000
# samples/s unblocked, ~6,900/s at 8-32 MB; ResNet-18: 84/s at 128 MB, 218/s at 32 MB),
# much smaller ones per-operation overhead (ResNet-18 at 8 MB: one sample of layer3 a block,
# 188/s).
BLOCK_BYTES = 2**25


def block_budget(max_memory, device):
    """Bytes of one layer's per-sample gradients to hold at once: ``max_memory`` (None: no
    bound), and on the CPU at most BLOCK_BYTES; a GPU gets blocks as large as allowed
    (fewer, larger kernels)."""
    if torch.device(device).type != "cpu":
        return max_memory
    return BLOCK_BYTES if max_memory is None else min(max_memory, BLOCK_BYTES)


def sample_block(n, per_sample, budget):
    """How many samples' gradients of one layer fit in ``budget`` bytes (None: all n);
    at least one."""
    if budget is None:
        return n
    return max(1, min(n, int(budget // max(per_sample, 1))))


def layer_summaries(layer, records, budget):
    """Per-parameter summaries (n, 9) of one layer's per-sample gradients, computed in
    sample blocks so that about ``budget`` bytes of them exist at once (see
    :func:`block_budget`).

    records: (input, output gradient) of each call of the layer; the calls' gradients
    add up (a layer used twice)."""
    n = records[0][0].shape[0]
    block = sample_block(n, max(bytes_per_sample(layer, x, g) for x, g in records), budget)
    parts = {}
    for start in range(0, n, block):
        grads = {}
        for x, grad_out in records:
            rows = slice(start, start + block)
            for param, g in per_sample_layer_gradient(layer, x[rows], grad_out[rows]).items():
                grads[param] = _dense(grads[param]) + _dense(g) if param in grads else g
        for param, g in grads.items():
            parts.setdefault(param, []).append(summarize_gradient(g))
    return {param: torch.cat(summaries) for param, summaries in parts.items()}
