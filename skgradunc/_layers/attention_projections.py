"""Self-attention's weights from one batched pass: the projections' per-sample gradients
are sums over the tokens of outer products, as a Linear's over a sequence.

For ``nn.MultiheadAttention`` called as self-attention (query, key and value one tensor,
packed projection, no masks, no bias_k/bias_v or zero attention, the attention weights'
gradient zero or unused), with x the tokens, qkv = x W_in^T + b_in, ctx the heads'
attention context and out = ctx W_out^T + b_out:

    dW_in = sum_t dqkv_t (x) x_t,   db_in = sum_t dqkv_t,
    dW_out = sum_t dout_t (x) ctx_t, db_out = sum_t dout_t,

with dqkv the gradient of the loss at the projection's output, which one backward through
the attention of the whole batch gives for every token of every sample (a sample's
attention reads its own tokens only). The forms are a Linear's (:mod:`.products`): kept
factored, or formed by one product, by cost. The context is recomputed here; where it
does not give the layer's recorded output (another kernel's rounding aside), the call is
replayed instead (:mod:`.attention`).
"""

import math

import torch
from torch.nn import functional as F

from .products import position_gradient, product_bytes, product_form

__all__ = ["projection_call", "projection_gradients", "projection_bytes"]


def projection_call(layer, replay, grads):
    """The tokens (n, T, E) of a call the projections path can take, else None."""
    args = replay.arguments
    query = args.get("query")
    if not (layer._qkv_same_embed_dim and layer.bias_k is None and layer.bias_v is None
            and not layer.add_zero_attn and query is args.get("key") is args.get("value")
            and args.get("attn_mask") is None and args.get("key_padding_mask") is None
            and not args.get("is_causal", False) and query.dim() == 3):
        return None
    if any(g is not None and bool(g.any()) for g in grads[1:]):
        return None   # the attention weights' own gradient: not a projection's
    return query if layer.batch_first else query.transpose(0, 1)


def _context(layer, qkv):
    """The heads' attention context (n, T, E) of the packed projections (n, T, 3E)."""
    n, tokens, _ = qkv.shape
    heads, width = layer.num_heads, layer.head_dim
    q, k, v = (part.reshape(n, tokens, heads, width).transpose(1, 2)
               for part in qkv.split(layer.embed_dim, dim=-1))
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(width), dim=-1)
    return (weights @ v).transpose(1, 2).reshape(n, tokens, layer.embed_dim)


def projection_gradients(layer, x, recorded, dout, tensors):
    """{parameter: per-sample gradient} of the call on tokens ``x`` (n, T, E) whose output
    was ``recorded`` and got the gradient ``dout`` (both as the layer returns them); None
    when the recomputed output is not the recorded one."""
    recorded = recorded.detach()
    if not layer.batch_first:
        recorded, dout = recorded.transpose(0, 1), dout.transpose(0, 1)
    w_in, b_in = tensors["in_proj_weight"], tensors.get("in_proj_bias")
    w_out, b_out = tensors["out_proj.weight"], tensors.get("out_proj.bias")
    with torch.enable_grad():
        qkv = F.linear(x, w_in, b_in).detach().requires_grad_()
        ctx = _context(layer, qkv)
        out = F.linear(ctx.detach(), w_out, b_out)
        scale = recorded.abs().amax().clamp_min(1e-30)
        if not torch.allclose(out.detach(), recorded, rtol=1e-4,
                              atol=1e-5 * float(scale)):
            return None
        dqkv, = torch.autograd.grad(ctx, qkv, grad_outputs=dout @ w_out)
    tokens = x.shape[1]
    grads = {"in_proj_weight": position_gradient(
                 product_form(tokens, *w_in.shape), dqkv, x),
             "out_proj.weight": position_gradient(
                 product_form(tokens, *w_out.shape), dout, ctx.detach())}
    if b_in is not None:
        grads["in_proj_bias"] = dqkv.sum(1)
    if b_out is not None:
        grads["out_proj.bias"] = dout.sum(1)
    return grads


def projection_bytes(layer, tokens, size):
    """Bytes one sample's projection gradients occupy while summarised."""
    w_in, w_out = layer.in_proj_weight, layer.out_proj.weight
    return sum(product_bytes(product_form(tokens, *w.shape), tokens, *w.shape, size)
               for w in (w_in, w_out)) + size * 8 * tokens * layer.embed_dim
