"""Per-sample weight gradients of single layers, by the rule registered for each layer
type (:mod:`skgradunc._layers`), summarised block by block of samples so that memory
follows one layer, not the network.
"""

import torch

from ._layers import (LowRank, Outer, Rows, dense, layer_tensors, registered_rule, rule_for,
                      summarize_gradient)

__all__ = ["supported_layer", "per_sample_layer_gradient", "summarize_gradient",
           "layer_summaries", "replay_summaries", "block_budget", "sample_block", "Outer",
           "LowRank", "Rows"]


def supported_layer(layer):
    """Whether a per-layer rule is exact for this layer instance in its configuration
    (:func:`skgradunc._layers.rule_for`)."""
    return rule_for(layer) is not None


def per_sample_layer_gradient(layer, x, grad_out, rule=None, tensors=None):
    """{"weight": ..., "bias": ...} per-sample gradients for one call of ``layer``, by
    ``rule`` (default: its registered one), from ``tensors`` (its parameters and buffers
    on the computation's device; default: its own). Each entry holds every element of
    the per-sample gradient, in an order chosen for speed (a convolution's weight
    gradient comes transposed); only order-free statistics are taken of them."""
    rule = rule or registered_rule(layer)
    return rule.gradients(layer, x, grad_out, layer_tensors(layer) if tensors is None else tensors)


def bytes_per_sample(layer, x, grad_out, rule=None):
    """Bytes one sample's gradients of ``layer`` occupy while summarised, by its rule."""
    return (rule or registered_rule(layer)).bytes_per_sample(layer, x, grad_out)


def weight_gradient_form(layer, x, grad_out):
    """The form ("outer", "low_rank", "shifted", "dense") of a Linear's or convolution's
    per-sample weight gradient (:func:`skgradunc._layers.products.product_form`)."""
    return registered_rule(layer).form(layer, x, grad_out)


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


def layer_summaries(layer, records, budget, rule=None, tensors=None):
    """Per-parameter summaries (n, 9) of one layer's per-sample gradients, computed in
    sample blocks so that about ``budget`` bytes of them exist at once (see
    :func:`block_budget`).

    records: (input, output gradient) of each call of the layer; the calls' gradients
    add up (a layer used twice). ``rule`` and ``tensors``: as for
    :func:`per_sample_layer_gradient`."""
    n = records[0][0].shape[0]
    block = sample_block(n, max(bytes_per_sample(layer, x, g, rule) for x, g in records),
                         budget)
    parts = {}
    for start in range(0, n, block):
        grads = {}
        for x, grad_out in records:
            rows = slice(start, start + block)
            for param, g in per_sample_layer_gradient(layer, x[rows], grad_out[rows], rule,
                                                      tensors).items():
                grads[param] = dense(grads[param]) + dense(g) if param in grads else g
        for param, g in grads.items():
            parts.setdefault(param, []).append(summarize_gradient(g))
    return {param: torch.cat(summaries) for param, summaries in parts.items()}


def replay_summaries(layer, rule, records, tensors, budget, n):
    """Per-parameter summaries (n, 9) of a unit replayed per sample (a composite rule:
    nn.MultiheadAttention), in sample blocks of about ``budget`` bytes. records: (replay,
    gradients of its outputs) of each call; the calls' gradients add up."""
    per_sample = max(rule.bytes_per_sample(layer, replay, grads) for replay, grads in records)
    block = sample_block(n, per_sample, budget)
    parts = {}
    for start in range(0, n, block):
        rows, total = slice(start, min(n, start + block)), {}
        for replay, grads in records:
            for param, g in rule.replay_gradients(layer, replay, grads, tensors, rows).items():
                total[param] = total[param] + g if param in total else g
        for param, g in total.items():
            parts.setdefault(param, []).append(summarize_gradient(g))
    return {param: torch.cat(summaries) for param, summaries in parts.items()}
