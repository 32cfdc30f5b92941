"""The per-layer strategy: one batched forward with each layer's calls recorded by its
rule, one backward to the layers' outputs, then each layer's per-sample gradients from
its rule, summarised block by block, never all at once."""

import torch
from torch.func import functional_call

from .._layers import block_budget, gradient_uses, summarize_gradient
from .._outputs import class_logits, first_scores
from ..statistics import zero_summary
from ._audit import NotPerLayer, first_line, requiring_grad
from ._losses import target_loss
from ._plan import bind_layers

__all__ = ["PerLayer", "per_sample_copy"]


def per_sample_copy(weight, n):
    """A weight of leading dimension 1 repeated to n rows, a leaf of its own."""
    return weight.detach().expand(n, *weight.shape[1:]).clone().requires_grad_()


def _unit_tensors(name, tensors):
    """The parameters and buffers of unit ``name`` (its children's included), by their
    names in the unit."""
    prefix = f"{name}." if name else ""
    return {full[len(prefix):]: t for full, t in tensors.items() if full.startswith(prefix)}


class PerLayer:
    """Per-sample gradients from the layers' rules (``plan.layers``); exact where every
    weight's gradient comes from its layer's recorded calls alone, which each chunk's
    autograd graph shows (else :class:`NotPerLayer`)."""

    name = "per-layer"

    def __init__(self, plan, module, device, max_memory):
        self.plan, self.module = plan, module
        self.layers = bind_layers(plan, module)
        self.units = plan.unit_of()
        self.needed = plan.needed()
        self.budget = block_budget(max_memory, device)
        self.overwritten = set(plan.overwritten)
        self.per_call = {unit: dict(counts) for unit, counts in plan.uses}

    def chunk_size(self, batch_size):
        # each layer's gradients are bounded block by block: the chunk keeps batch_size
        return batch_size

    def _record_calls(self, params, frozen, x):
        """Forward with each layer's calls recorded by its rule; the saved tensors that
        in-place operations overwrite (``self.overwritten``) are private copies, and the
        rest of the network gets a copy of such an output."""
        calls = {name: [] for name in self.layers}

        def hook_for(name, rule):
            def hook(layer, args, kwargs, output):
                index = len(calls[name])
                call = rule.record(layer, args, kwargs, output,
                                   private=(name, index, "input") in self.overwritten)
                if call is None:
                    return None   # not recorded: the check of the uses refuses the layer
                calls[name].append(call)
                if rule.copies_outputs or (name, index, "output") in self.overwritten:
                    if isinstance(output, tuple):
                        return tuple(o.clone() if isinstance(o, torch.Tensor) else o
                                     for o in output)
                    return output.clone()
                return None
            return hook

        handles = [layer.register_forward_hook(hook_for(name, rule), with_kwargs=True)
                   for name, (layer, rule) in self.layers.items()]
        try:
            output = functional_call(self.module, (params, frozen), (x,))
        finally:
            for handle in handles:
                handle.remove()
        return output, calls

    def _forward(self, params, frozen, x):
        """Output and recorded calls, redone once with isolation if an in-place operation
        overwrote a saved tensor not yet known to be (later chunks isolate it at once).
        The first pass gets a copy of x: the module may change its input in place."""
        output, calls = self._record_calls(params, frozen, x.clone())
        found = {(name, index, kind) for name, records in calls.items()
                 for index, call in enumerate(records) for kind in call.overwritten()}
        if found - self.overwritten:
            self.overwritten |= found
            output, calls = self._record_calls(params, frozen, x)
        return output, calls

    def _uses_per_call(self, name, calls, tensors):
        if name not in self.per_call:
            layer, rule = self.layers[name]
            self.per_call[name] = (rule.uses_per_call(layer, calls[name][0],
                                                      _unit_tensors(name, tensors))
                                   if calls[name] else {})
        return self.per_call[name]

    def _check_uses(self, scores, leaves, calls, frozen):
        """Each weight's gradient must come from its layer's recorded calls alone, as
        often as its rule says a call takes it, or the per-layer gradients would miss a
        use (``F.linear(h, self.embed.weight)`` elsewhere, a layer called by keyword):
        raises :class:`NotPerLayer` naming them."""
        uses = gradient_uses(scores, leaves, self.module)
        tensors = {**leaves, **frozen}
        other = []
        for name in self.plan.parameters:
            if name in self.plan.broadcast:
                continue   # every use goes through its per-sample copy
            unit, param = self.units[name]
            per_call = self._uses_per_call(unit, calls, tensors).get(param, 1)
            if uses.get(name, 0) != len(calls[unit]) * per_call:
                other.append(name)
        if other:
            raise NotPerLayer(f"weights whose gradient has other uses than their layer's "
                              f"recorded calls: {other}")

    def summaries(self, params, frozen, x):
        plan, n = self.plan, len(x)
        with torch.enable_grad():
            leaves = requiring_grad(params)
            for name in plan.broadcast:   # one row per sample: its gradient, per sample
                leaves[name] = per_sample_copy(leaves[name], n)
            output, calls = self._forward(leaves, frozen, x)
            logits = class_logits(output, plan.output, n)
            self._check_uses(first_scores(output), leaves, calls, frozen)
            outputs = [out for name in self.layers for call in calls[name]
                       for out in call.outputs]
            outputs += [leaves[name] for name in plan.broadcast]
            loss = target_loss(logits, plan.target, plan.temperature).sum()
            grads = torch.autograd.grad(loss, outputs, allow_unused=True)
        # an output that does not reach the loss (attention weights not used) has none
        grad_outputs = iter(torch.zeros_like(o) if g is None else g
                            for o, g in zip(outputs, grads))
        tensors = {**params, **frozen}
        summaries = {}
        for name, (layer, rule) in self.layers.items():
            records = calls[name]
            per_call = [tuple(next(grad_outputs) for _ in call.outputs) for call in records]
            calls[name] = None   # let this layer's saved tensors go once summarised
            prefix = f"{name}." if name else ""
            own = _unit_tensors(name, tensors)
            if not records:   # never called (an auxiliary head in eval mode): zero gradient
                for param in rule.parameters(layer):
                    if own.get(param) is not None:
                        summaries[prefix + param] = zero_summary(n, own[param].numel(),
                                                                 x.device)
                continue
            for param, summary in rule.summaries(layer, records, per_call, own, self.budget,
                                                 self.needed).items():
                summaries[prefix + param] = summary
        for name in plan.broadcast:
            summaries[name] = summarize_gradient(next(grad_outputs), self.needed)
        return summaries, first_scores(output).detach()

    def check_broadcast(self, params, frozen, x):
        """The weights of ``plan.broadcast`` get their per-sample gradients from a copy
        with one row per sample; exact when every use broadcasts that row over the batch
        (``class_token.expand(n, -1, -1)``, ``x + pos_embedding``). Checked here: the copy
        gives the same outputs, and changing sample k's row changes no other sample's
        output; else raises :class:`NotPerLayer`."""
        broadcast = self.plan.broadcast
        if len(x) < 2:   # two rows to tell apart, even from one sample
            x = torch.cat([x, x])
        n = len(x)

        def scores(rows):
            with torch.no_grad():
                out = functional_call(self.module, ({**params, **rows}, frozen), (x.clone(),))
            return first_scores(out)
        try:
            rows = {name: per_sample_copy(params[name], n).detach() for name in broadcast}
            plain, same = scores({}), scores(rows)
            if not torch.allclose(plain, same, rtol=1e-5, atol=1e-6):
                raise NotPerLayer("a per-sample copy of the broadcast weights changes the "
                                  "outputs")
            for k in range(n):
                moved = {name: row.clone() for name, row in rows.items()}
                for row in moved.values():
                    row[k] += 1.0
                others = [j for j in range(n) if j != k]
                if not torch.allclose(scores(moved)[others], same[others], rtol=1e-5,
                                      atol=1e-6):
                    raise NotPerLayer(f"the weights {list(broadcast)} mix the samples")
        except NotPerLayer:
            raise
        except Exception as exc:  # noqa: BLE001 - a use that does not broadcast that row
            raise NotPerLayer(f"the weights {list(broadcast)} are not used row by row: "
                              f"{first_line(exc)}") from exc
