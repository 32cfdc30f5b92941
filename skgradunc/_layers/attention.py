"""nn.MultiheadAttention: one unit with all its weights (its input projections, and the
out_proj it uses without calling it), called with query, key, value and keywords. Its
per-sample gradients come from ``torch.func.vmap`` over the vjp of the attention alone on
one sample, replayed from its recorded arguments and the gradients of its outputs: the
layer-local fallback, for a layer called with several tensors.

Called as plain self-attention with only norms asked, its projections' gradients come from
one batched pass instead (:mod:`.attention_projections`), checked against the recorded
output.

A call is replayed only when every tensor argument has a known batch dimension (query,
key and value: 0 with ``batch_first``, else 1; ``key_padding_mask``: 0) or none (a 2-D
``attn_mask``); a 3-D ``attn_mask`` (one mask per sample and head) is not recorded, so
the engine's check of each weight's uses sends the network to an exact whole-network
path.
"""

import inspect
from contextlib import nullcontext

import torch
from torch import nn
from torch.func import functional_call, vjp, vmap

from ._calls import Call, needed_while, norm_only, summaries_in_blocks, summed
from ._registry import LayerRule, register_rule, unaltered
from .attention_projections import projection_bytes, projection_call, projection_gradients
from ._uses import gradient_uses

try:   # torch >= 2.3
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def _batchable_attention():
        return sdpa_kernel(SDPBackend.MATH)
except ImportError:
    _batchable_attention = nullcontext


class Replay:
    """A recorded call: its bound arguments (tensors cloned: private), the batch
    dimension of each tensor argument (None: shared by the samples) and its outputs."""

    def __init__(self, arguments, batch_dims, outputs, output_dims):
        self.arguments, self.batch_dims = arguments, batch_dims
        self.outputs, self.output_dims = outputs, output_dims

    def __len__(self):
        name, dim = next((k, d) for k, d in self.batch_dims.items() if d is not None)
        return self.arguments[name].shape[dim]


@register_rule(nn.MultiheadAttention, torch_only=True)
class AttentionRule(LayerRule):
    owns_children = True    # a unit of all its weights, its children's included
    copies_outputs = True   # the replay keeps the outputs as recorded

    def applies(self, layer):
        return all(unaltered(m) for m in layer.modules())

    def parameters(self, layer):
        return tuple(name for name, _ in layer.named_parameters())

    def record(self, layer, args, kwargs, output, private=False):
        """A call holding a :class:`Replay`, or None when it cannot be replayed (its
        tensor arguments are always private copies)."""
        try:
            bound = inspect.signature(layer.forward).bind(*args, **kwargs)
        except TypeError:
            return None
        arguments = dict(bound.arguments)
        first = 0 if layer.batch_first else 1
        dims = {}
        for name, value in arguments.items():
            if not isinstance(value, torch.Tensor):
                continue
            if name in ("query", "key", "value"):
                dims[name] = first
            elif name == "key_padding_mask":
                dims[name] = 0
            elif name == "attn_mask" and value.dim() == 2:
                dims[name] = None
            else:
                return None
        if any(name not in arguments for name in ("query", "key", "value")):
            return None
        # private copies, keeping which arguments were the same tensor (self-attention)
        copies = {}
        for name in dims:
            value = arguments[name]
            copies.setdefault(id(value), value.detach().clone())
            arguments[name] = copies[id(value)]
        outputs = output if isinstance(output, tuple) else (output,)
        tensors = tuple(o for o in outputs if isinstance(o, torch.Tensor))
        output_dims = (first,) + (0,) * (len(tensors) - 1)   # attention weights: dim 0
        replay = Replay(arguments, dims, tensors, output_dims)
        return Call(tuple(copies.values()), tensors, replay)

    def summaries(self, layer, calls, grads, tensors, budget, needed=None):
        """Self-attention's projections from one batched pass
        (:mod:`.attention_projections`) where the call allows it; any other call
        replayed per sample (vmap over the vjp of the attention alone); the
        projections path only where norms alone are asked. In sample blocks
        of about ``budget`` bytes; the calls' gradients add up."""
        with needed_while(needed):   # the projections' forms depend on it
            # the projections path pays where only norms are asked (their Grams); for every
            # statistic it measured 0.86-1.06x the replay's speed (docs/performance.md)
            records = [(call.state, g, projection_call(layer, call.state, g)
                        if norm_only() else None) for call, g in zip(calls, grads)]
            per_sample = max(self.bytes_per_sample(layer, replay, g) if x is None else
                             projection_bytes(layer, x.shape[1], x.element_size())
                             for replay, g, x in records)

        def gradients(rows):
            return summed(self._call_gradients(layer, replay, g, x, tensors, rows)
                          for replay, g, x in records)
        return summaries_in_blocks(len(records[0][0]), per_sample, budget, gradients, needed)

    def _call_gradients(self, layer, replay, grads, x, tensors, rows):
        """One call's per-sample gradients of the samples of ``rows``."""
        if x is not None:
            dim = 0 if layer.batch_first else 1
            found = projection_gradients(
                layer, x[rows], replay.outputs[0].narrow(dim, rows.start, len(x[rows])),
                grads[0].narrow(dim, rows.start, len(x[rows])), tensors)
            if found is not None:
                return found
        return self.replay_gradients(layer, replay, grads, tensors, rows)

    def uses_per_call(self, layer, call, tensors):
        """The edges into each weight of one replayed call: the attention may use a
        weight more than once (packed in_proj_weight: once for q, k and v each)."""
        own = {name: tensors[name] for name in self.parameters(layer)}
        rest = {name: t for name, t in tensors.items() if name not in own}
        with torch.enable_grad():
            leaves = {k: v.detach().requires_grad_() for k, v in own.items()}
            out = functional_call(layer, (leaves, rest), (), call.state.arguments)
            outs = out if isinstance(out, tuple) else (out,)
            total = sum(o.sum() for o in outs
                        if isinstance(o, torch.Tensor) and o.grad_fn is not None)
        return gradient_uses(total, leaves, layer)

    def replay_gradients(self, layer, replay, grads, tensors, rows):
        """{parameter: per-sample gradient (samples of ``rows``, ...)} of one call."""
        own = {name: tensors[name].detach() for name in self.parameters(layer)}
        rest = {name: t for name, t in tensors.items() if name not in own}
        batched = [name for name, d in replay.batch_dims.items() if d is not None]
        # one vmapped input per distinct tensor: query is key is value stays so
        distinct, index = [], {}
        for name in batched:
            value = replay.arguments[name]
            if id(value) not in index:
                index[id(value)] = len(distinct)
                distinct.append((value, replay.batch_dims[name]))
        slot = {name: index[id(replay.arguments[name])] for name in batched}
        cotangents = [torch.zeros_like(o) if g is None else g
                      for o, g in zip(replay.outputs, grads)]

        def sliced(t, dim):
            return t.narrow(dim, rows.start, rows.stop - rows.start)

        def one_sample(*values):
            samples, cots = values[:len(distinct)], values[len(distinct):]

            def forward(params):
                arguments = dict(replay.arguments)
                for name in batched:
                    dim = replay.batch_dims[name]
                    arguments[name] = samples[slot[name]].unsqueeze(dim)
                out = functional_call(layer, (params, rest), (), arguments)
                out = out if isinstance(out, tuple) else (out,)
                return tuple(o for o in out if isinstance(o, torch.Tensor))
            _, pullback = vjp(forward, own)
            return pullback(tuple(c.unsqueeze(d) for c, d in zip(cots, replay.output_dims)))[0]

        in_dims = tuple(d for _, d in distinct) + replay.output_dims
        inputs = [sliced(v, d) for v, d in distinct] + [
            sliced(c, d) for c, d in zip(cotangents, replay.output_dims)]
        # the math kernel of scaled_dot_product_attention: vmap has batching rules for
        # its operations, not for the fused kernels (a loop over the samples instead)
        with torch.enable_grad(), _batchable_attention():
            return vmap(one_sample, in_dims=in_dims)(*inputs)

    def bytes_per_sample(self, layer, replay, grads):
        size = replay.outputs[0].element_size()
        weights = sum(p.numel() for p in layer.parameters())
        activations = sum(t.numel() // len(replay) for t in replay.arguments.values()
                          if isinstance(t, torch.Tensor))
        return size * (3 * weights + 8 * activations)
