"""Per-sample gradients of a loss at a chosen target, batched with torch.func.

For every input x the gradient of a per-sample loss L(f(x; w)) with respect to
the trainable weights w is computed without touching the user's module: its
parameters are passed to :func:`torch.func.functional_call` as detached copies,
so ``.grad``, ``requires_grad`` and the weights stay as they are, and train/eval
flags are restored module by module afterwards.
"""

import warnings
from collections import OrderedDict
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from .statistics import (combine, finalize, softmax_features, summarize, summarize_low_rank,
                         summarize_outer, with_zeros)

__all__ = ["TARGETS", "target_loss", "resolve_groups", "evaluation_mode",
           "GradientFeatureEngine"]

TARGETS = ("predicted", "all_ones", "uniform")


def target_loss(logits, target):
    """Per-sample loss (shape (n,)) of logits (n, q) at ``target``.

    ``"predicted"`` (Oberdiek et al. 2018)
        Negative log-likelihood at the predicted class: -log p_argmax.
    ``"all_ones"`` (Lee & AlRegib 2020)
        Binary cross-entropy between the sigmoid outputs and the all-ones
        confounding label, summed over the classes:
        sum_k -log sigmoid(z_k) = sum_k softplus(-z_k).
    ``"uniform"`` (GradNorm, Huang et al. 2021)
        Cross-entropy between the uniform distribution and the softmax,
        -(1/q) sum_k log p_k; it differs from KL(u || p) by the constant log q,
        so the gradients are identical.
    """
    if target == "predicted":
        log_p = torch.log_softmax(logits, dim=-1)
        predicted = logits.argmax(dim=-1, keepdim=True)
        return -log_p.gather(-1, predicted).squeeze(-1)
    if target == "all_ones":
        return torch.nn.functional.softplus(-logits).sum(dim=-1)
    if target == "uniform":
        return -torch.log_softmax(logits, dim=-1).mean(dim=-1)
    raise ValueError(f"unknown target {target!r}; choose one of {TARGETS}")


def trainable_parameters(module):
    """Names of the parameters that gradients are taken for.

    Those with ``requires_grad``; a module frozen entirely (none requires
    grad, e.g. prepared for inference) counts as all of its weights.
    """
    named = list(module.named_parameters())
    if not named:
        raise ValueError(f"{type(module).__name__} has no parameters to take gradients of")
    trainable = [name for name, p in named if p.requires_grad]
    return trainable or [name for name, _ in named]


def _layer_groups(trainable):
    groups = OrderedDict()
    for name in trainable:
        layer = name.rpartition(".")[0] or "module"
        groups.setdefault(layer, []).append(name)
    return groups


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
        -> list of layer or parameter names.
    """
    trainable = trainable_parameters(module)
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
            found = [p for p in trainable
                     if p == member or p.startswith(member + ".") or member == "module"
                     and "." not in p]
            if not found:
                raise ValueError(
                    f"unknown layer or parameter {member!r}; layers with trainable "
                    f"parameters: {layers}")
            names.extend(p for p in found if p not in names)
        resolved[str(group)] = names
    return resolved


@contextmanager
def evaluation_mode(module):
    """Put every submodule in eval mode and give each its own flag back after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes:
            m.training = mode


def _supported_layer(layer):
    if isinstance(layer, nn.Linear):
        return True
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        return layer.groups == 1 and layer.padding_mode == "zeros"
    if isinstance(layer, nn.Embedding):
        # max_norm renormalises the weight in the forward; scale_grad_by_freq couples the
        # samples of a batch: both go through vmap
        return layer.max_norm is None and not layer.scale_grad_by_freq
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        # eval mode with running statistics: samples do not interact
        return layer.affine and layer.track_running_stats and layer.running_mean is not None
    if isinstance(layer, nn.LayerNorm):
        return layer.elementwise_affine
    return False


def _per_layer_modules(module, trainable):
    """Layer name -> module when every trainable parameter is the weight or bias of a
    Linear, Conv1d/Conv2d (groups=1, zero padding), BatchNorm1d/2d (with running
    statistics), LayerNorm or Embedding (no max_norm, no scale_grad_by_freq) and used
    by that layer alone: their per-sample gradients are exact products, sums or
    scatters of the layer's input and output gradient. None otherwise (e.g. tied
    weights, which vmap handles)."""
    owners = {}
    for _, sub in module.named_modules(remove_duplicate=False):
        for p in sub.parameters(recurse=False):
            owners[id(p)] = owners.get(id(p), 0) + 1
    if any(owners[id(p)] > 1 for name, p in module.named_parameters() if name in trainable):
        return None
    layers = {}
    for name in trainable:
        layer_name, _, param = name.rpartition(".")
        layer = module.get_submodule(layer_name)
        if not _supported_layer(layer) or param not in ("weight", "bias"):
            return None
        layers[layer_name] = layer
    return layers


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


def _factored(r, a, b):
    """Whether a gradient summed over r positions of a x b outer products stays factored
    (Outer or LowRank) rather than materialised."""
    return r == 1 or r ** 4 * (a + b) <= LOW_RANK_GAIN * a * b


def _shiftable(layer, grad_out):
    """Whether :func:`_shifted_conv_gradient` applies and pays: stride 1, no dilation,
    enough input channels, and output rows long enough that the zero columns it adds
    (kernel width - 1 a row) waste at most a quarter of its products."""
    kernel_size, stride, dilation, _ = _conv_geometry(layer)
    return (stride == (1, 1) and dilation == (1, 1)
            and layer.in_channels >= SHIFTED_MIN_CHANNELS
            and 4 * (kernel_size[1] - 1) <= grad_out.shape[-1])


def _position_gradient(u, v):
    """Per-sample gradient sum_s u[:, s] (x) v[:, s] of a layer applied at r positions,
    in the cheapest exact form: Outer (r = 1), LowRank (few positions) or dense."""
    r, a, b = u.shape[1], u.shape[2], v.shape[2]
    if r == 1:
        return Outer(u[:, 0], v[:, 0])
    if _factored(r, a, b):
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


def _conv_windows(layer, x):
    """(n, C*kh*kw, L) input patches, the layout of the weight's gradient."""
    kernel_size, stride, dilation, padding = _conv_geometry(layer)
    if isinstance(layer, nn.Conv1d):
        x = x.unsqueeze(2)
    x = _conv_padding(x, kernel_size, dilation, padding)
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
    kernel_size, _, dilation, padding = _conv_geometry(layer)
    if isinstance(layer, nn.Conv1d):
        x = x.unsqueeze(2)
    x = _conv_padding(x, kernel_size, dilation, padding)
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


def _per_sample_layer_gradient(layer, x, grad_out):
    """{"weight": ..., "bias": ...} per-sample gradients for one call of ``layer``.

    Each entry holds every element of the per-sample gradient, in an order chosen for
    speed (a convolution's weight gradient comes transposed); only order-free
    statistics are taken of them."""
    n = x.shape[0]
    if isinstance(layer, nn.Linear):
        a = x.reshape(n, -1, x.shape[-1])                                  # (n, T, I)
        b = grad_out.reshape(n, -1, grad_out.shape[-1])                   # (n, T, O)
        grads = {"weight": _position_gradient(b, a)}
        bias = b.sum(dim=1)
    elif isinstance(layer, nn.Embedding):
        return {"weight": _embedding_rows(layer, x, grad_out)}
    elif isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        b = grad_out.reshape(n, grad_out.shape[1], -1)                    # (n, O, L)
        if _factored(b.shape[2], b.shape[1], layer.weight[0].numel()) or \
                not _shiftable(layer, grad_out):
            windows = _conv_windows(layer, x)                             # (n, K, L)
            # materialised as windows @ b^T, the weight gradient transposed (n, K, O):
            # statistics do not depend on element order, and this product runs ~1.9x
            # faster than b @ windows^T on the CPU (conv2 of the paper CNN)
            grads = {"weight": _position_gradient(b.transpose(1, 2),
                                                  windows.transpose(1, 2))}
        else:
            grads = {"weight": _shifted_conv_gradient(layer, x, b)}
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


def _overwritten(calls):
    """(layer, call, "input"/"output") of the saved tensors changed since they were saved."""
    return frozenset((name, call, kind) for name, records in calls.items()
                     for call, (inp, out, version_in, version_out) in enumerate(records)
                     for kind, changed in (("input", inp._version != version_in),
                                           ("output", out._version != version_out))
                     if changed)


def _summary(g):
    if isinstance(g, Outer):
        return summarize_outer(g.u, g.v)
    if isinstance(g, LowRank):
        return summarize_low_rank(g.u, g.v, g.dense().flatten(1))
    if isinstance(g, Rows):
        return with_zeros(summarize(g.rows.flatten(1)), g.zeros)
    return summarize(g.reshape(g.shape[0], -1))


def _bytes_per_sample(layer, x, grad_out):
    """Bytes one sample's per-layer gradient occupies while it is summarised: the
    materialised gradient, its inputs (a convolution's windows) and the statistics'
    temporaries; factored gradients their factors (LowRank's float64 pair products)."""
    size = grad_out.element_size()
    if isinstance(layer, nn.Embedding):
        return size * 3 * min(x[0].numel(), layer.num_embeddings) * layer.embedding_dim
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        conv = not isinstance(layer, nn.Linear)
        a = grad_out.shape[1] if conv else grad_out.shape[-1]                    # outputs
        b = layer.weight[0].numel() if conv else x.shape[-1]                     # inputs
        r = grad_out[0].numel() // a                                             # positions
        inputs = size * r * (a + b)                                              # windows
        if r == 1:
            return inputs
        if r ** 4 * (a + b) <= LOW_RANK_GAIN * a * b:
            return inputs + size * (2 * a * b + 2 * r * r * (a + b))
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


def _layer_summaries(layer, records, budget):
    """Per-parameter summaries (n, 9) of one layer's per-sample gradients, computed in
    sample blocks so that about ``budget`` bytes of them exist at once (see
    :func:`block_budget`).

    records: (input, output gradient) of each call of the layer; the calls' gradients
    add up (a layer used twice)."""
    n = records[0][0].shape[0]
    block = sample_block(n, max(_bytes_per_sample(layer, x, g) for x, g in records), budget)
    parts = {}
    for start in range(0, n, block):
        grads = {}
        for x, grad_out in records:
            rows = slice(start, start + block)
            for param, g in _per_sample_layer_gradient(layer, x[rows], grad_out[rows]).items():
                grads[param] = _dense(grads[param]) + _dense(g) if param in grads else g
        for param, g in grads.items():
            parts.setdefault(param, []).append(_summary(g))
    return {param: torch.cat(summaries) for param, summaries in parts.items()}


class GradientFeatureEngine:
    """Compute gradient statistics and softmax features for chunks of inputs.

    Parameters
    ----------
    module : torch.nn.Module returning logits (n, q)
    target : one of TARGETS
    groups : OrderedDict from :func:`resolve_groups`
    statistics : sequence of statistic names
    include_network : bool
        Add the statistics of the whole gradient (every trainable weight).
    softmax : sequence of softmax feature names (may be empty)
    device : torch.device
    overwritten : iterable of (layer, call, "input"/"output"), optional
        Saved tensors known to be overwritten by in-place operations
        (:meth:`detect_overwritten`); found anew otherwise.
    """

    def __init__(self, module, target, groups, statistics, include_network, softmax,
                 device, overwritten=()):
        self.module = module
        self.target = target
        self.groups = groups
        self.statistics = tuple(statistics)
        self.include_network = include_network
        self.softmax = tuple(softmax)
        self.device = torch.device(device)
        self.trainable = trainable_parameters(module)
        self.layers = _per_layer_modules(module, self.trainable)
        self.overwritten = frozenset(overwritten)
        self._membership_mask = None

    def feature_names(self):
        names = [f"{g}__{s}" for g in self.groups for s in self.statistics]
        if self.include_network:
            names += [f"network__{s}" for s in self.statistics]
        names += [f"softmax__{f}" for f in self.softmax]
        return names

    def _weights_on_device(self):
        trainable = set(self.trainable)
        params, frozen = {}, {}
        for name, p in self.module.named_parameters():
            (params if name in trainable else frozen)[name] = p.detach().to(self.device)
        frozen.update({name: b.detach().to(self.device)
                       for name, b in self.module.named_buffers()})
        return params, frozen

    @property
    def strategy(self):
        """"per-layer" (exact input x output-gradient products) or "vmap" (any layer)."""
        return "per-layer" if self.layers is not None else "vmap"

    def _summary_function(self, max_memory):
        """(params, frozen, x) -> ({parameter name: summary (n, 9)}, logits)."""
        if self.layers is not None:
            return lambda params, frozen, x: self._per_layer_summaries(
                params, frozen, x, max_memory)
        gradients = self._vmap_gradient_function()

        def summaries(params, frozen, x):
            grads, logits = gradients(params, frozen, x)
            return self.summarize_gradients(grads), logits
        return summaries

    def summarize_gradients(self, grads):
        """Summaries of materialised per-sample gradients {parameter name: (n, ...)}."""
        return {name: _summary(grads[name]) for name in self.trainable}

    def _record_calls(self, params, frozen, x):
        """Forward with hooks saving each layer's input and output. Those that in-place
        operations overwrite (``self.overwritten``: (layer, call, "input"/"output")) are
        isolated: the layer gets a private copy of its input, the rest of the network a
        copy of its output."""
        calls = {name: [] for name in self.layers}
        overwritten = self.overwritten

        def recorder(name):
            def hook(layer, inputs, output):
                call = len(calls[name])
                saved = inputs[0].detach()
                if (name, call, "input") in overwritten:
                    saved = saved.clone()
                calls[name].append((saved, output, saved._version, output._version))
                return output.clone() if (name, call, "output") in overwritten else None
            return hook

        handles = [layer.register_forward_hook(recorder(name))
                   for name, layer in self.layers.items()]
        try:
            logits = functional_call(self.module, (params, frozen), (x,))
        finally:
            for handle in handles:
                handle.remove()
        return logits, calls

    def _forward(self, params, frozen, x):
        """Logits and recorded calls, redone once with isolation if an in-place operation
        overwrote a saved tensor not yet known to be (later chunks isolate it at once)."""
        logits, calls = self._record_calls(params, frozen, x)
        found = _overwritten(calls)
        if found:
            self.overwritten = self.overwritten | found
            logits, calls = self._record_calls(params, frozen, x)
        return logits, calls

    def detect_overwritten(self, X):
        """Find, on a forward of X (a sample or two), the saved tensors that in-place
        operations overwrite (e.g. ``ReLU(inplace=True)`` after a BatchNorm), so that
        transforms isolate them from the first chunk on; returns them."""
        if self.layers is not None:
            params, frozen = self._weights_on_device()
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
            with evaluation_mode(self.module), torch.enable_grad():
                self._forward(params, frozen, torch.from_numpy(X).to(self.device))
        return self.overwritten

    def _per_layer_summaries(self, params, frozen, x, max_memory):
        """One batched forward, one backward to the layer outputs, then each layer's
        per-sample gradients built and summarised block by block, never all at once."""
        params = {k: v.detach().requires_grad_() for k, v in params.items()}
        with torch.enable_grad():
            logits, calls = self._forward(params, frozen, x)
            outputs = [out for name in self.layers for _, out, _, _ in calls[name]]
            grad_outputs = iter(torch.autograd.grad(
                target_loss(logits, self.target).sum(), outputs))
        summaries, budget = {}, block_budget(max_memory, self.device)
        for name, layer in self.layers.items():
            records = [(inp, next(grad_outputs)) for inp, _, _, _ in calls[name]]
            calls[name] = None  # let this layer's saved tensors go once summarised
            prefix = f"{name}." if name else ""
            for param, summary in _layer_summaries(layer, records, budget).items():
                summaries[prefix + param] = summary
        return summaries, logits.detach()

    def _vmap_gradient_function(self):
        module, target = self.module, self.target

        def loss(params, frozen, x):
            logits = functional_call(module, (params, frozen), (x.unsqueeze(0),))
            return target_loss(logits, target).sum(), logits.squeeze(0)

        return vmap(grad(loss, has_aux=True), in_dims=(None, None, 0))

    def _membership(self, device):
        """(groups [+ network], parameters) mask of which parameters form each group,
        made once per device (no host-to-device copy per chunk)."""
        if self._membership_mask is None or self._membership_mask.device != device:
            rows = [[p in names for p in self.trainable] for names in self.groups.values()]
            if self.include_network:
                rows.append([True] * len(self.trainable))
            self._membership_mask = torch.tensor(rows, dtype=torch.bool, device=device)
        return self._membership_mask

    def _chunk_features(self, summaries, logits):
        # one summary per parameter tensor; groups and the network combine them exactly
        columns = []
        if self.statistics:
            per_parameter = torch.stack([summaries[name] for name in self.trainable])
            groups = combine(per_parameter, self._membership(per_parameter.device))
            stats = finalize(groups, self.statistics)                    # (groups, n, k)
            columns.append(stats.transpose(0, 1).flatten(1))
        if self.softmax:
            columns.append(softmax_features(logits.detach().to(torch.float64), self.softmax))
        return torch.cat(columns, dim=1)

    # vmap holds a chunk's per-sample gradients of every weight plus temporaries of the
    # same size (measured ~1.8x the parameters' bytes per sample on ResNet-18); 3x leaves
    # a margin.
    BYTES_PER_MATERIALISED_PARAMETER = 3

    def chunk_size(self, batch_size, max_memory=None):
        """Samples per chunk: ``batch_size``; on the vmap path shrunk so that the
        per-sample gradients held at once stay within ``max_memory`` bytes (None: no
        bound). The per-layer path bounds them itself, layer by layer and block by block
        (:func:`sample_block`), so its chunks keep ``batch_size``."""
        if max_memory is None or self.layers is not None:
            return batch_size
        materialised = sum(p.numel() * p.element_size()
                           for name, p in self.module.named_parameters()
                           if name in set(self.trainable))
        per_sample = self.BYTES_PER_MATERIALISED_PARAMETER * max(materialised, 1)
        return max(1, min(batch_size, int(max_memory // per_sample)))

    def transform(self, X, batch_size, max_memory=None):
        """Features for X (numpy float32, first axis = samples) as float64 numpy.

        X goes to the device once when it fits in ``max_memory`` (on the CPU it is only
        wrapped), else chunk by chunk; features stay on the device until one copy back
        at the end. Running out of GPU memory halves the chunk and retries it (with a
        warning), down to one sample."""
        params, frozen = self._weights_on_device()
        summaries = self._summary_function(max_memory)
        chunk = self.chunk_size(batch_size, max_memory)
        data = torch.from_numpy(X)
        if max_memory is None or X.nbytes <= max_memory:
            data = data.to(self.device)
        outputs, start = [], 0
        with evaluation_mode(self.module):
            while start < len(X):
                x = data[start:start + chunk].to(self.device)
                try:
                    outputs.append(self._chunk_features(*summaries(params, frozen, x)))
                except torch.cuda.OutOfMemoryError:
                    if len(x) == 1:
                        raise
                    chunk = len(x) // 2
                    del x
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    warnings.warn(f"out of GPU memory; retrying with chunks of {chunk} samples "
                                  "(a smaller batch_size avoids the retry)", RuntimeWarning)
                    continue
                start += chunk
        return torch.cat(outputs).cpu().numpy()  # one copy back to the host
