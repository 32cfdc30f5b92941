"""The whole-network strategy: ``torch.func.vmap`` over the gradient of one sample's
loss, every weight's per-sample gradient materialised for a chunk (weights shared or used
outside their layer's call, networks no rule covers)."""

from torch.func import functional_call, grad, vmap

from .._layers import summarize_gradient
from .._outputs import class_logits, first_scores
from ._losses import target_loss

__all__ = ["WholeNetworkVmap"]


class WholeNetworkVmap:
    name = "vmap"
    # vmap holds a chunk's per-sample gradients of every weight plus temporaries of the
    # same size (measured ~1.8x the parameters' bytes per sample on ResNet-18); 3x leaves
    # a margin.
    BYTES_PER_MATERIALISED_PARAMETER = 3

    def __init__(self, plan, module, device, max_memory):
        self.plan, self.module, self.max_memory = plan, module, max_memory
        self.needed = plan.needed()
        module_, target, output, temperature = module, plan.target, plan.output, \
            plan.temperature

        def loss(params, frozen, x):
            raw = functional_call(module_, (params, frozen), (x.unsqueeze(0),))
            scores = first_scores(raw)
            return (target_loss(class_logits(raw, output, 1), target, temperature).sum(),
                    scores.squeeze(0))
        self._gradients = vmap(grad(loss, has_aux=True), in_dims=(None, None, 0))

    def chunk_size(self, batch_size):
        """``batch_size``, shrunk so that the per-sample gradients held at once stay
        within ``max_memory`` bytes (None: no bound)."""
        if self.max_memory is None:
            return batch_size
        wanted = set(self.plan.parameters)
        materialised = sum(p.numel() * p.element_size()
                           for name, p in self.module.named_parameters() if name in wanted)
        per_sample = self.BYTES_PER_MATERIALISED_PARAMETER * max(materialised, 1)
        return max(1, min(batch_size, int(self.max_memory // per_sample)))

    def summaries(self, params, frozen, x):
        grads, scores = self._gradients(params, frozen, x)
        return ({name: summarize_gradient(grads[name], self.needed)
                 for name in self.plan.parameters}, scores)
