"""What a rule records of a layer's call, and the default way its per-sample gradients
are summarised: block by block of samples, so that memory follows one layer."""

import contextvars

import torch

from ._forms import dense, summarize_gradient

__all__ = ["Call", "BLOCK_BYTES", "block_budget", "sample_block", "summaries_in_blocks",
           "summed", "norm_only", "needed_while"]

# the summary columns the statistics read, while a layer's gradients are made: a rule
# whose forms can skip work asks (:func:`norm_only`)
_NEEDED = contextvars.ContextVar("skgradunc_needed", default=None)


def norm_only():
    """Whether only the L2 norm of the gradients being made is needed (the sums of
    squares: a sum of outer products never needs forming, its Gram matrices give it)."""
    from ..statistics import SUMSQ
    needed = _NEEDED.get()
    return needed is not None and set(needed) <= {SUMSQ}


class Call:
    """One recorded call of a layer: its saved inputs (detached; a private copy where an
    in-place operation would overwrite them), its outputs (in the autograd graph: the
    backward gives their gradients), a rule's own state (a replay's arguments), and the
    tensors' versions when recorded, by which overwrites are found."""

    __slots__ = ("inputs", "outputs", "state", "versions")

    def __init__(self, inputs, outputs, state=None):
        self.inputs, self.outputs, self.state = tuple(inputs), tuple(outputs), state
        self.versions = tuple(t._version for t in self.inputs + self.outputs)

    def overwritten(self):
        """Which of "input" and "output" an in-place operation changed since recorded."""
        n = len(self.inputs)
        kinds = []
        if any(t._version != v for t, v in zip(self.inputs, self.versions[:n])):
            kinds.append("input")
        if any(t._version != v for t, v in zip(self.outputs, self.versions[n:])):
            kinds.append("output")
        return kinds


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


class needed_while:
    """Context manager: :func:`norm_only` answers for ``needed`` within the block."""

    def __init__(self, needed):
        self.needed = needed

    def __enter__(self):
        self.token = _NEEDED.set(self.needed)

    def __exit__(self, *exc):
        _NEEDED.reset(self.token)


def summaries_in_blocks(n, per_sample, budget, gradients, needed=None):
    """{parameter: (n, 9) summary} of per-sample gradients made by ``gradients(rows)``
    ({parameter: gradient of the samples of ``rows``, summed over the layer's calls}),
    block by block of about ``budget`` bytes (``per_sample`` bytes a sample)."""
    block = sample_block(n, per_sample, budget)
    parts = {}
    with needed_while(needed):
        for start in range(0, n, block):
            for param, g in gradients(slice(start, min(n, start + block))).items():
                parts.setdefault(param, []).append(summarize_gradient(g, needed))
    return {param: torch.cat(summaries) for param, summaries in parts.items()}


def summed(per_call):
    """{parameter: gradient} summed over the calls' {parameter: gradient} (a layer used
    twice); a single call's forms stay as they are (factored)."""
    total = {}
    for grads in per_call:
        for param, g in grads.items():
            total[param] = dense(total[param]) + dense(g) if param in total else g
    return total
