"""One sample at a time: plain autograd, for whatever vmap cannot batch (custom
autograd.Functions, recurrent layers), and for a chunk of a single sample, whose batch
gradient is its per-sample gradient. Memory: one sample's gradient."""

import functools

import torch
from torch.func import functional_call

from .._layers import summarize_gradient
from .._outputs import class_logits, first_scores
from ..statistics import Segments, summarize_segments
from ._audit import modules_run, refuse_cut_off, requiring_grad
from ._features import GroupSummaries, group_members
from ._losses import target_loss

__all__ = ["OneSampleAtATime"]

# a sample's whole gradient up to this many elements is summarised in one joined pass in
# float64 (few operations, whatever the number of parameters; ~50 bytes an element held);
# larger ones parameter by parameter
JOINED_ELEMENTS = 2**20


class OneSampleAtATime:
    name = "loop"

    def __init__(self, plan, module, device, max_memory):
        self.plan, self.module = plan, module
        self.needed = plan.needed()
        self._layout = self._own = None

    def chunk_size(self, batch_size):
        return batch_size   # one sample's gradient is held at a time

    def _joined(self, names, grads, params):
        """One sample's gradients (None: a layer that did not run, zero) as one row of
        every group's parameters, then the network's, when they are small enough to be
        summarised group by group in one pass (:class:`GroupSummaries`); else None."""
        if self._layout is None:
            self._layout = _joined_layout(self.plan, tuple(params[name].numel() for name in names),
                                          params[names[0]].device)
        members, segments = self._layout
        if segments is None:
            return None
        flat = [(torch.zeros_like(params[name]) if g is None else g).reshape(1, -1)
                for name, g in zip(names, grads)]
        return torch.cat([flat[k] for group in members for k in group], 1), segments

    def _summarised(self, names, grads, params):
        """{parameter: (1, 9)} of one sample's gradients (None: a layer that did not
        run, zero)."""
        return {name: summarize_gradient(
            (torch.zeros_like(params[name]) if g is None else g)[None], self.needed)
            for name, g in zip(names, grads)}

    def _gradients(self, leaves, frozen, sample, track=False):
        """(gradients of ``plan.parameters``, None where the loss does not reach them; the
        names of the layers that ran when ``track``; the module's output) of one sample.
        ``leaves`` None: the module's own weights (autograd.grad sets no ``.grad``)."""
        plan, names = self.plan, self.plan.parameters
        with modules_run(self.module, names if track else ()) as ran:
            if leaves is None:
                raw = self.module(sample[None])
                wanted = [self._own[name] for name in names]
            else:
                raw = functional_call(self.module, (leaves, frozen), (sample[None],))
                wanted = [leaves[name] for name in names]
        loss = target_loss(class_logits(raw, plan.output, 1), plan.target,
                           plan.temperature).sum()
        return torch.autograd.grad(loss, wanted, allow_unused=True), ran, raw

    def _own_weights(self, params):
        """Whether the module can run on its own weights: every one taken requires grad,
        and the module lives where the computation does (a frozen one named in groups, or
        another device, goes through functional_call's leaves)."""
        if self._own is None:
            device = next(iter(params.values())).device
            own = dict(self.module.named_parameters())
            here = all(t.device == device for t in (*own.values(), *self.module.buffers()))
            self._own = own if here and all(own[name].requires_grad
                                            for name in self.plan.parameters) else {}
        return bool(self._own)

    def summaries(self, params, frozen, x):
        names = self.plan.parameters
        parts, joined, scores = [], [], []
        with torch.enable_grad():
            leaves = None if self._own_weights(params) else requiring_grad(params)
            for sample in x:
                grads, _, raw = self._gradients(leaves, frozen, sample)
                if any(g is None for g in grads):
                    # a layer that did not run has a zero gradient (as in vmap); one that
                    # ran but does not reach the loss is refused: which ran, asked again
                    grads, ran, raw = self._gradients(leaves, frozen, sample, track=True)
                    refuse_cut_off([n for n, g in zip(names, grads) if g is None], ran)
                row = self._joined(names, grads, params) if len(x) == 1 else None
                if row is not None:
                    joined.append(row)
                else:
                    parts.append(self._summarised(names, grads, params))
                scores.append(first_scores(raw).detach()[0])
        if joined:
            row, segments = joined[0]
            return (GroupSummaries(summarize_segments(row, segments, self.needed)),
                    scores[0][None])
        return ({name: torch.cat([p[name] for p in parts]) for name in names},
                torch.stack(scores))


@functools.lru_cache(maxsize=16)
def _joined_layout(plan, numels, device):
    """(each group's parameter positions, their :class:`Segments`, None when the joined row
    would exceed JOINED_ELEMENTS), made once per plan (a plan is a frozen record)."""
    index = {name: k for k, name in enumerate(plan.parameters)}
    members = [[index[p] for p in group] for group in group_members(plan)]
    sizes = [sum(numels[k] for k in group) for group in members]
    return members, (Segments(sizes, device) if sum(sizes) <= JOINED_ELEMENTS else None)
